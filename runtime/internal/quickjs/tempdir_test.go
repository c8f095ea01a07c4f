package quickjs

import "os"

func tempRoot() string { return os.TempDir() }

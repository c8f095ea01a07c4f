module github.com/insertfn/insertfn

go 1.26

require (
	github.com/insertfn/insertfn/sdk v0.0.0
	github.com/tetratelabs/wazero v1.12.0
	github.com/tidwall/gjson v1.20.1
)

require (
	github.com/hashicorp/golang-lru/v2 v2.0.7 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.0 // indirect
	github.com/tidwall/sjson v1.2.7 // indirect
	golang.org/x/sys v0.44.0 // indirect
)

replace github.com/insertfn/insertfn/sdk => ./sdk

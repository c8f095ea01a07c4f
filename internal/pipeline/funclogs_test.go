package pipeline

import (
	"fmt"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/hostcall"
)

func TestFunctionLogs(t *testing.T) {
	l := NewFunctionLogs(3)
	for i := range 5 {
		l.record("f", fmt.Appendf(nil, `{"messageId":"m%d"}`, i), []hostcall.LogLine{{Level: abi.LevelInfo, Message: fmt.Sprint("line ", i)}})
	}
	l.record("g", []byte(`{}`), nil)
	got := l.Last("f", 0)
	if len(got) != 3 || got[0].Message != "line 2" || got[2].Message != "line 4" || got[2].MessageID != "m4" || got[2].Function != "f" {
		t.Errorf("Last = %+v, want lines 2..4, oldest first", got)
	}
	if two := l.Last("f", 2); len(two) != 2 || two[0].Message != "line 3" {
		t.Errorf("Last(2) = %+v", two)
	}
	if l.Last("g", 0) != nil || l.Last("nobody", 0) != nil {
		t.Error("lines for a function that logged nothing")
	}
}

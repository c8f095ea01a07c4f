module github.com/insertfn/insertfn/sdk

go 1.26

require (
	github.com/tidwall/gjson v1.20.1
	github.com/tidwall/sjson v1.2.7
)

require (
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.0 // indirect
)

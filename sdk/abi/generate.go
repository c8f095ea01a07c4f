package abi

// The guest SDKs of other languages state the ABI's names and numbers too:
// their generated parts are written from this package by abigen, and a test
// of abigen fails when they are out of date. After a change here, run
//
//	cd sdk && go generate ./abi
//
//go:generate go run ./internal/abigen -c ../c/insertfn.h -as ../assemblyscript/index.ts

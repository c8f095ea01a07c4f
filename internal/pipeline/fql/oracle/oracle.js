#!/usr/bin/env node
// oracle.js evaluates FQL intermediate representation (IR) with Segment's
// own evaluator, @segment/tsub, for internal/pipeline/fql's oracle test.
//
// Input, on stdin: one JSON object per line,
//   {"ir": "<the IR as a JSON string, as tsub takes it>", "event": {...}}
// Output, on stdout: one line per input line, in the same order,
//   {"match": true} or {"match": false}  what tsub's matches(event, {type: "fql", ir}) returned;
//   {"error": "..."}                     what it threw, or why the line was not read.
// A line's error does not stop the others. Exit status 0 unless stdin or
// stdout fails.
'use strict'

const readline = require('readline')
const { matches } = require('@segment/tsub')

const out = []
const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })

input.on('line', (line) => {
  out.push(JSON.stringify(evaluate(line)))
})

input.on('close', () => {
  process.stdout.write(out.length > 0 ? out.join('\n') + '\n' : '')
})

// evaluate answers one input line.
function evaluate(line) {
  let req
  try {
    req = JSON.parse(line)
  } catch (e) {
    return { error: `oracle: input line is not JSON: ${e.message}` }
  }
  if (req === null || typeof req !== 'object' || typeof req.ir !== 'string') {
    return { error: 'oracle: input line needs "ir", the IR as a JSON string, and "event"' }
  }
  try {
    return { match: matches(req.event, { type: 'fql', ir: req.ir }) }
  } catch (e) {
    return { error: String(e && e.message ? e.message : e) }
  }
}

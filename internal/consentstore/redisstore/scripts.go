package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts run every operation server-side, atomically: Redis runs
// one script at a time, so concurrent writers on different hosts cannot
// interleave a read and a write of one record. Every key a script touches
// starts with the store's prefix P ("{KeyPrefix}"), so all of them are in
// one hash slot (see the package documentation); KEYS[1] is one of them,
// for routing, and ARGV[1] is P.
//
// Key layout under P:
//
//	P i:ID   string: the primary id of the record that id ID (primary or alias) finds
//	P r:ID   hash: the record whose primary id is ID
//	           "u"          updated_at (ts20)
//	           "a:ALIAS"    "" per alias
//	           "c:NAME"     category entry: ts20 + JSON
//	           "p:N:REGNAME" purpose entry (N = length of the regulation): ts20 + JSON
//	P h:ID   hash: the history of record ID, Point.Key -> decision JSON "\n" source JSON
//	P all    sorted set (all scores 0) of primary ids, for Scan
//
// ts20 is a timestamp as 20 decimal digits (int64 offset by 2^63), so that
// comparing two of them byte by byte compares the times, exactly, for any
// int64 (Lua numbers are doubles and Redis compares strings by locale).

// luaCommon is prepended to every script.
const luaCommon = `
local P = ARGV[1]
-- less compares byte by byte, whatever the server's locale.
local function less(a, b)
  if a == b then return false end
  local n = math.min(#a, #b)
  for k = 1, n do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then return x < y end
  end
  return #a < #b
end
`

// updateScript applies one update. ARGV: P, id, #aliases, aliases...,
// #entries, (field, value)..., #points, (field, value)..., updated_at.
// It returns {primary, base record fields or nil, then per linked record
// in id order: id, fields}: the records as they were before the update,
// from which the caller computes the result with MergeRecords.
var updateScript = redis.NewScript(luaCommon + `
local uid = ARGV[2]
local i = 3
local na = tonumber(ARGV[i]); i = i + 1
local aliases = {}
for k = 1, na do aliases[k] = ARGV[i]; i = i + 1 end
local ne = tonumber(ARGV[i]); i = i + 1
local ents = {}
for k = 1, ne do ents[k] = {ARGV[i], ARGV[i + 1]}; i = i + 2 end
local np = tonumber(ARGV[i]); i = i + 1
local pts = {}
for k = 1, np do pts[k] = {ARGV[i], ARGV[i + 1]}; i = i + 2 end
local U = ARGV[i]

-- The history upsert rule (consentstore.UpsertPoint): the same decision
-- keeps the first point; a different one with the same key replaces it.
local function decision(v)
  local n = string.find(v, '\n', 1, true)
  if n then return string.sub(v, 1, n - 1) end
  return v
end
local function upsert(hkey, f, v)
  local old = redis.call('HGET', hkey, f)
  if old and decision(old) == decision(v) then return end
  redis.call('HSET', hkey, f, v)
end

local base = redis.call('GET', P .. 'i:' .. uid)
local linked, seen = {}, {}
if base then seen[base] = true end
for _, a in ipairs(aliases) do
  local r = redis.call('GET', P .. 'i:' .. a)
  if r and not seen[r] then seen[r] = true; linked[#linked + 1] = r end
end
local target = base or uid
local rkey, hkey = P .. 'r:' .. target, P .. 'h:' .. target
local out = {target, false}
if base then
  out[2] = redis.call('HGETALL', rkey)
  local bu = redis.call('HGET', rkey, 'u')
  if bu and less(U, bu) then U = bu end
end

-- Last writer wins per entry, by timestamp; equal timestamps: the newer
-- write wins.
local function put(f, v)
  local ts = string.sub(v, 1, 20)
  local old = redis.call('HGET', rkey, f)
  if not old or not less(ts, string.sub(old, 1, 20)) then
    redis.call('HSET', rkey, f, v)
    if less(U, ts) then U = ts end
  end
end
local function index(id)
  if id == '' then return end
  redis.call('SET', P .. 'i:' .. id, target)
  if id ~= target then redis.call('HSET', rkey, 'a:' .. id, '') end
end

-- Linked records merge into the target in id order, then the update.
local sorted = {}
for k, l in ipairs(linked) do sorted[k] = l end
table.sort(sorted, less)
for _, l in ipairs(sorted) do
  local fields = redis.call('HGETALL', P .. 'r:' .. l)
  out[#out + 1] = l
  out[#out + 1] = fields
  for k = 1, #fields, 2 do
    local f, v = fields[k], fields[k + 1]
    local c = string.sub(f, 1, 2)
    if c == 'c:' or c == 'p:' then put(f, v)
    elseif c == 'a:' then index(string.sub(f, 3))
    elseif f == 'u' and less(U, v) then U = v end
  end
  index(l)
end
-- Their histories join the target's, in the order the aliases found them.
for _, l in ipairs(linked) do
  local lh = P .. 'h:' .. l
  local hs = redis.call('HGETALL', lh)
  for k = 1, #hs, 2 do upsert(hkey, hs[k], hs[k + 1]) end
  redis.call('DEL', P .. 'r:' .. l, lh)
  redis.call('ZREM', P .. 'all', l)
end

for _, e in ipairs(ents) do put(e[1], e[2]) end
for _, a in ipairs(aliases) do index(a) end
index(uid)
index(target)
for _, p in ipairs(pts) do upsert(hkey, p[1], p[2]) end
redis.call('HSET', rkey, 'u', U)
redis.call('ZADD', P .. 'all', 0, target)
return out
`)

// getScript finds a record. ARGV: P, id. It returns {primary, fields} or
// nil.
var getScript = redis.NewScript(luaCommon + getBody)

// getReplicaScript is getScript for a replica (EVALSHA_RO, Redis 7): its
// flags say that it writes nothing and, without allow-stale, make a
// replica refuse it while its link to the primary is down.
var getReplicaScript = redis.NewScript("#!lua flags=no-writes\n" + luaCommon + getBody)

const getBody = `
local p = redis.call('GET', P .. 'i:' .. ARGV[2])
if not p then return false end
return {p, redis.call('HGETALL', P .. 'r:' .. p)}
`

// historyScript finds a record and its history. ARGV: P, id. It returns
// {primary, fields, history fields} or nil.
var historyScript = redis.NewScript(luaCommon + `
local p = redis.call('GET', P .. 'i:' .. ARGV[2])
if not p then return false end
return {p, redis.call('HGETALL', P .. 'r:' .. p), redis.call('HGETALL', P .. 'h:' .. p)}
`)

// deleteScript removes a record, its ids and its history. ARGV: P, id. It
// returns {primary, fields} as they were, or nil.
var deleteScript = redis.NewScript(luaCommon + `
local p = redis.call('GET', P .. 'i:' .. ARGV[2])
if not p then return false end
local rkey = P .. 'r:' .. p
local fields = redis.call('HGETALL', rkey)
for k = 1, #fields, 2 do
  if string.sub(fields[k], 1, 2) == 'a:' then redis.call('DEL', P .. 'i:' .. string.sub(fields[k], 3)) end
end
redis.call('DEL', P .. 'i:' .. p, rkey, P .. 'h:' .. p)
redis.call('ZREM', P .. 'all', p)
return {p, fields}
`)

// scanScript returns a page of records in id order. ARGV: P, the last id
// of the previous page ("" for the first), the page size. It returns
// {id, fields, id, fields, ...}.
var scanScript = redis.NewScript(luaCommon + `
local min = '-'
if ARGV[2] ~= '' then min = '(' .. ARGV[2] end
local ids = redis.call('ZRANGEBYLEX', P .. 'all', min, '+', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', P .. 'r:' .. id)
end
return out
`)

"""The Lua scripts of the rooms in Redis (see ``_redis_rooms`` for the design).

Every script gets the nine keys of one room (:data:`ROOM_KEYS`, in that
order) and, as its first three arguments, the room's key prefix (for the
per-member keys), how many presence events to keep, and the idle lifetime of
the room's keys in milliseconds. Each runs atomically in Redis: two relays
never hand out the same sequence number or member id, and a client message
id is said at most once.

The log's entry ids carry the room's sequence number: message ``n`` is
``n-0``, the presence events after it are ``n-1``, ``n-2``... So a ``since``
sequence number is a stream position, and a hole in the numbers is a gap.

Entry fields: ``k`` (``m`` message, ``e`` event for everyone, ``l`` a member
left), ``h`` (a message's JSON header), ``b`` (its binary payload), ``j``
(an event's JSON frame), ``m``/``r``/``c``/``w`` (who left, the reason, the
connection it had, the kick's reason text).
"""

from __future__ import annotations

__all__ = ["DETACH", "JOIN", "LEAVE", "REAP", "RESUME", "ROOM_KEYS", "SAY"]

ROOM_KEYS = ("log", "state", "seats", "online", "tokens", "token_of", "expiry", "sizes", "events")
"""The suffixes of a room's keys, in the order the scripts take them."""

_COMMON = """
local K_LOG, K_STATE, K_SEATS, K_ONLINE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_TOKENS, K_TOKEN_OF, K_EXPIRY = KEYS[5], KEYS[6], KEYS[7]
local K_SIZES, K_EVENTS = KEYS[8], KEYS[9]
local BASE = ARGV[1]
local LAG_MS, LAG_COUNT = 10000, 1000
local CAP = tonumber(ARGV[2])
local TTL = tonumber(ARGV[3])

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function touch()
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], TTL) end
end

local function event(fields)
  local seq = redis.call('HGET', K_STATE, 'seq') or '0'
  local sub = redis.call('HINCRBY', K_STATE, 'sub', 1)
  local id = seq .. '-' .. sub
  redis.call('XADD', K_LOG, id, unpack(fields))
  redis.call('RPUSH', K_EVENTS, id)
  if redis.call('LLEN', K_EVENTS) > CAP then
    redis.call('XDEL', K_LOG, redis.call('LPOP', K_EVENTS))
  end
  return id
end

local function describe(id, online)
  local info = redis.call('HGET', K_SEATS, id)
  return '{"id":"' .. id .. '",' .. info .. ',"online":' .. (online and 'true' or 'false') .. '}'
end

local function members()
  local ids = redis.call('HKEYS', K_SEATS)
  table.sort(ids, function(a, b)
    return tonumber(string.sub(a, 2)) < tonumber(string.sub(b, 2))
  end)
  local out = {}
  for _, id in ipairs(ids) do
    out[#out + 1] = describe(id, redis.call('HEXISTS', K_ONLINE, id) == 1)
  end
  return out
end

local function left(id, reason, conn, why, extra)
  local frame = '{"type":"left","member":"' .. id .. '","reason":"' .. reason .. '"'
  return {'k', 'l', 'm', id, 'r', reason, 'c', conn, 'w', why, 'j', frame .. extra .. '}'}
end

local function forget(id, reason, conn, why)
  if redis.call('HDEL', K_SEATS, id) == 0 then return false end
  redis.call('HDEL', K_ONLINE, id)
  local hashed = redis.call('HGET', K_TOKEN_OF, id)
  if hashed then redis.call('HDEL', K_TOKENS, hashed) end
  redis.call('HDEL', K_TOKEN_OF, id)
  redis.call('ZREM', K_EXPIRY, id)
  redis.call('DEL', BASE .. 'seen:' .. id)
  local eid = event(left(id, reason, conn, why, ''))
  if redis.call('HLEN', K_SEATS) == 0 then
    -- The room is empty: its history goes (the numbering goes on), the last
    -- event stays for the relays still tailing it.
    local seq = tonumber(redis.call('HGET', K_STATE, 'seq') or '0')
    redis.call('XTRIM', K_LOG, 'MINID', eid)
    redis.call('DEL', K_SIZES, K_EVENTS)
    redis.call('HSET', K_STATE, 'first', seq + 1, 'pfirst', seq + 1, 'bytes', 0, 'sbytes', 0)
  end
  return true
end

local function drop(id, grace_ms, grace_json, announce)
  redis.call('HDEL', K_ONLINE, id)
  if grace_ms <= 0 then
    forget(id, 'dropped', '', '')
    return
  end
  redis.call('ZADD', K_EXPIRY, now_ms() + grace_ms, id)
  if announce then event(left(id, 'dropped', '', '', ',"grace":' .. grace_json)) end
end

local function welcome(id, since)
  local st = redis.call('HMGET', K_STATE, 'seq', 'sub', 'first')
  local seq = tonumber(st[1] or '0')
  local pos = seq .. '-' .. (st[2] or '0')
  local first = tonumber(st[3] or (seq + 1))
  if since < 0 then since = first - 1 end
  if since > seq then since = seq end
  local start = since + 1
  if start < first then start = first end
  local entries = redis.call('XRANGE', K_LOG, start .. '-0', pos)
  return {'ok', id, pos, seq, first, since, redis.call('HGET', K_SEATS, id), members(), entries}
end
"""

JOIN = (
    _COMMON
    + """
-- ARGV[4] conn, [5] the seat's name and meta (JSON members), [6] token hash, [7] max members
local conn = ARGV[4]
local online = redis.call('HGETALL', K_ONLINE)
for i = 1, #online, 2 do
  if online[i + 1] == conn then return welcome(online[i], -1) end  -- a retry that took effect
end
if redis.call('HLEN', K_SEATS) >= tonumber(ARGV[7]) then return {'full'} end
if not redis.call('HGET', K_STATE, 'first') then
  local next = tonumber(redis.call('HGET', K_STATE, 'seq') or '0') + 1
  redis.call('HSET', K_STATE, 'first', next, 'pfirst', next)
end
local id = 'm' .. redis.call('HINCRBY', K_STATE, 'ids', 1)
redis.call('HSET', K_SEATS, id, ARGV[5])
event({'k', 'e', 'j', '{"type":"joined","member":' .. describe(id, true) .. '}'})
redis.call('HSET', K_ONLINE, id, conn)
redis.call('HSET', K_TOKENS, ARGV[6], id)
redis.call('HSET', K_TOKEN_OF, id, ARGV[6])
touch()
return welcome(id, -1)
"""
)

RESUME = (
    _COMMON
    + """
-- ARGV[4] conn, [5] token hash, [6] since, [7] announce drops (1/0)
local conn = ARGV[4]
local id = redis.call('HGET', K_TOKENS, ARGV[5])
if not id then return {'unknown'} end
local deadline = redis.call('ZSCORE', K_EXPIRY, id)
if deadline and tonumber(deadline) <= now_ms() then
  forget(id, 'timed_out', '', '')
  touch()
  return {'unknown'}
end
local old = redis.call('HGET', K_ONLINE, id)
if old == conn then return welcome(id, tonumber(ARGV[6])) end  -- a retry that took effect
redis.call('ZREM', K_EXPIRY, id)
if old then event(left(id, 'replaced', old, '', '')) end
redis.call('HSET', K_ONLINE, id, conn)
if ARGV[7] == '1' and not old then
  event({'k', 'e', 'j', '{"type":"joined","member":' .. describe(id, true) .. ',"resumed":true}'})
end
touch()
return welcome(id, tonumber(ARGV[6]))
"""
)

SAY = (
    _COMMON
    + """
-- ARGV[4] member, [5] client id or '', [6] the header's end, [7] binary or '',
-- [8] 1 if binary, [9] history, [10] history bytes, [11] dedupe
local id, cid = ARGV[4], ARGV[5]
if redis.call('HEXISTS', K_SEATS, id) == 0 then return {'gone'} end
local seen = BASE .. 'seen:' .. id
if cid ~= '' then
  local said = redis.call('ZSCORE', seen, cid)
  if said then return {'ack', said} end
end
local seq = redis.call('HINCRBY', K_STATE, 'seq', 1)
redis.call('HSET', K_STATE, 'sub', 0)
local header = '{"type":"message","seq":' .. seq .. ',' .. ARGV[6]
local size = #header
if ARGV[8] == '1' then
  redis.call('XADD', K_LOG, seq .. '-0', 'k', 'm', 'h', header, 'b', ARGV[7])
  size = size + #ARGV[7]
else
  redis.call('XADD', K_LOG, seq .. '-0', 'k', 'm', 'h', header)
end
if cid ~= '' then
  redis.call('ZADD', seen, seq, cid)
  local n = redis.call('ZCARD', seen)
  local keep = tonumber(ARGV[11])
  if n > keep then redis.call('ZREMRANGEBYRANK', seen, 0, n - keep - 1) end
  redis.call('PEXPIRE', seen, TTL)
end
-- The history is [first, seq]; the log keeps [pfirst, seq]: what left the
-- history stays a while (LAG_MS, at most max(history, LAG_COUNT) messages and
-- history_bytes more bytes) for the tails that lag behind. K_SIZES holds
-- "bytes:ms" for each message in the log.
local now = now_ms()
redis.call('RPUSH', K_SIZES, size .. ':' .. now)
local st = redis.call('HMGET', K_STATE, 'first', 'pfirst', 'bytes', 'sbytes')
local first = tonumber(st[1] or '1')
local pfirst = tonumber(st[2] or first)
local bytes = tonumber(st[3] or '0') + size
local sbytes = tonumber(st[4] or '0')
local history, history_bytes = tonumber(ARGV[9]), tonumber(ARGV[10])
while seq - first + 1 > history or (bytes > history_bytes and seq - first + 1 > 1) do
  local item = redis.call('LINDEX', K_SIZES, first - pfirst)
  local gone = tonumber(string.match(item, '^%d+'))
  bytes = bytes - gone
  sbytes = sbytes + gone
  first = first + 1
end
local slack = math.max(history, LAG_COUNT)
local trimmed = false
while pfirst < first do
  local kept, at = string.match(redis.call('LINDEX', K_SIZES, 0), '^(%d+):(%d+)$')
  if first - pfirst <= slack and sbytes <= history_bytes and tonumber(at) > now - LAG_MS then
    break
  end
  redis.call('LPOP', K_SIZES)
  sbytes = sbytes - tonumber(kept)
  pfirst = pfirst + 1
  trimmed = true
end
redis.call('HSET', K_STATE, 'first', first, 'pfirst', pfirst, 'bytes', bytes, 'sbytes', sbytes)
if trimmed then redis.call('XTRIM', K_LOG, 'MINID', pfirst .. '-0') end
touch()
return {'ok', seq}
"""
)

DETACH = (
    _COMMON
    + """
-- ARGV[4] member ('' if unknown: found by conn), [5] conn, [6] grace ms,
-- [7] grace as JSON, [8] announce drops (1/0)
local id = ARGV[4]
if id == '' then
  local online = redis.call('HGETALL', K_ONLINE)
  for i = 1, #online, 2 do
    if online[i + 1] == ARGV[5] then id = online[i] end
  end
  if id == '' then return 0 end
end
if redis.call('HGET', K_ONLINE, id) ~= ARGV[5] then return 0 end
drop(id, tonumber(ARGV[6]), ARGV[7], ARGV[8] == '1')
touch()
return 1
"""
)

LEAVE = (
    _COMMON
    + """
-- ARGV[4] member, [5] reason, [6] the reason text for a kick
local conn = redis.call('HGET', K_ONLINE, ARGV[4]) or ''
local gone = forget(ARGV[4], ARGV[5], conn, ARGV[6])
touch()
return gone and 1 or 0
"""
)

REAP = (
    _COMMON
    + """
-- ARGV[4] the relays' lease key prefix, [5] grace ms, [6] grace as JSON, [7] announce (1/0)
local online = redis.call('HGETALL', K_ONLINE)
for i = 1, #online, 2 do
  local relay = string.match(online[i + 1], '^[^:]+')
  if redis.call('EXISTS', ARGV[4] .. relay) == 0 then
    drop(online[i], tonumber(ARGV[5]), ARGV[6], ARGV[7] == '1')  -- its relay is gone
  end
end
local expired = redis.call('ZRANGEBYSCORE', K_EXPIRY, '-inf', now_ms())
for _, id in ipairs(expired) do forget(id, 'timed_out', '', '') end
touch()
return #expired
"""
)

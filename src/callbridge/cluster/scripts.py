"""The Lua scripts behind cluster state. Redis runs a script atomically
(https://redis.io/docs/latest/develop/interact/programmability/eval-intro/), so "count, then take"
cannot interleave between instances. Every expiry is taken from the Redis server's own ``TIME``,
never an instance's clock, so instances with skewed clocks agree; Redis 7 replicates scripts by
their effects, which makes ``TIME`` in a writing script safe.

Shapes: a *lease set* is a sorted set whose members are leases and whose scores are their expiry
in Unix milliseconds. A lapsed lease (its owner died, or stopped renewing) is removed by the next
script that looks at the set.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACQUIRE_OPERATOR",
    "CLAIM_INSTANCE",
    "COUNT_LIVE",
    "HEARTBEAT",
    "LIST_INSTANCES",
    "RELEASE_OPERATOR",
    "RENEW",
    "RENEW_OPERATORS",
    "RESERVE",
]

_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1] lease set; ARGV[1] limit, ARGV[2] ttl ms, ARGV[3] member. Returns 1 (held) or 0 (full).
# Reserving a member already held renews it (a repeated webhook for the same call).
RESERVE: Final = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local expiry = now + tonumber(ARGV[2])
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
end
redis.call('ZADD', KEYS[1], expiry, ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
"""
)

# KEYS[1] lease set; ARGV[1] ttl ms, ARGV[2..] members. Renews the members still held; returns
# those that had lapsed (their slot may already be someone else's).
RENEW: Final = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local expiry = now + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV do
  if redis.call('ZADD', KEYS[1], 'XX', 'CH', expiry, ARGV[i]) == 0
     and not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    lost[#lost + 1] = ARGV[i]
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[1], last[2])
end
return lost
"""
)

# KEYS[1] lease set. Returns the number of leases not lapsed.
COUNT_LIVE: Final = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)

# KEYS[1] operator lease set (member: number), KEYS[2] hash number -> owner, KEYS[3] cursor.
# ARGV[1] ttl ms, ARGV[2] owner, ARGV[3] n, ARGV[4 .. 3+n] numbers in configured order, then the
# numbers to exclude. Round-robin from a shared cursor over numbers neither leased nor excluded.
# Returns the number leased, or false.
ACQUIRE_OPERATOR: Final = (
    _NOW
    + """
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #lapsed > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(lapsed))
end
local n = tonumber(ARGV[3])
if n == 0 then return false end
local excluded = {}
for i = 4 + n, #ARGV do excluded[ARGV[i]] = true end
local start = redis.call('INCR', KEYS[3])
for k = 0, n - 1 do
  local number = ARGV[4 + ((start + k) % n)]
  if not excluded[number] and not redis.call('ZSCORE', KEYS[1], number) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), number)
    redis.call('HSET', KEYS[2], number, ARGV[2])
    return number
  end
end
return false
"""
)

# KEYS[1] lease set, KEYS[2] owners; ARGV[1] owner, ARGV[2] number. Frees it only if ours.
RELEASE_OPERATOR: Final = """
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[1] then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] lease set, KEYS[2] owners; ARGV[1] ttl ms, ARGV[2] owner, ARGV[3..] numbers.
# Renews our leases; returns the numbers no longer ours.
RENEW_OPERATORS: Final = (
    _NOW
    + """
local lost = {}
for i = 3, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) > now and redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[2] then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""
)

# KEYS[1] instances (member: id, score: expiry ms), KEYS[2] the instance's info key.
# ARGV[1] id, ARGV[2] ttl ms, ARGV[3] info JSON, ARGV[4] info ttl ms. Returns server time ms.
HEARTBEAT: Final = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('SET', KEYS[2], ARGV[3], 'PX', tonumber(ARGV[4]))
return now
"""
)

# KEYS[1] instances. Returns {now, id1, expiry1, id2, expiry2, ...}.
LIST_INSTANCES: Final = (
    _NOW
    + """
local out = {now}
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #all do out[#out + 1] = all[i] end
return out
"""
)

# KEYS[1] instances, KEYS[2] the instance's info key; ARGV[1] id, ARGV[2] "force".
# Removes a dead instance (or, forced, any) exactly once: 1 for the one caller that did.
CLAIM_INSTANCE: Final = (
    _NOW
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
if ARGV[2] ~= 'force' and tonumber(score) > now then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""
)

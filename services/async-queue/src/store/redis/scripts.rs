//! The Lua scripts of the Redis backend: every move of an event between keys is one script, so
//! a crash can neither lose an event nor publish it twice.

/// Appends an event to its account's stream, creating the stream and its consumer group first
/// if missing, and lists the stream; an event whose request id was accepted within the last
/// ARGV[3] seconds is not appended again (a schedule tick fired again after a crash).
/// KEYS: stream, set of streams, the request id's marker. ARGV: group, event JSON, marker TTL.
pub(super) const ENQUEUE: &str = r"
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3]) then
  return ''
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
end
redis.call('SADD', KEYS[2], KEYS[1])
return redis.call('XADD', KEYS[1], '*', 'event', ARGV[2])
";

/// Finishes an entry, or moves it to the delayed set, if this consumer still owns it (after a
/// lease ran out another consumer may have taken it over; then the new owner decides).
/// KEYS: stream, delayed. ARGV: group, entry id, consumer, due ms ('' to finish), event JSON.
pub(super) const SETTLE: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5]) end
return 1
";

/// Moves due delayed events to their accounts' streams; returns {moved, next due score (absent
/// if none)}. KEYS: delayed, set of streams. ARGV: now ms, batch size, group, stream key prefix.
pub(super) const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local ok, ev = pcall(cjson.decode, m)
  local account = ''
  if ok and type(ev) == 'table' and type(ev['account_id']) == 'string' then account = ev['account_id'] end
  local stream = ARGV[4] .. account
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, ARGV[3], '0', 'MKSTREAM')
  end
  redis.call('SADD', KEYS[2], stream)
  redis.call('XADD', stream, '*', 'event', m)
  redis.call('ZREM', KEYS[1], m)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if nxt[2] then return {tostring(#due), nxt[2]} end
return {tostring(#due)}
";

/// Refreshes this consumer's heartbeat and touches the entries it still owns (resets their idle
/// time, so `XAUTOCLAIM` leaves them alone). KEYS: heartbeat key, then the stream of each entry.
/// ARGV: group, consumer, heartbeat ttl ms, then the entry ids (one per stream key).
pub(super) const RENEW: &str = r"
redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
local n = 0
for i = 2, #KEYS do
  local id = ARGV[i + 2]
  local p = redis.pcall('XPENDING', KEYS[i], ARGV[1], id, id, 1)
  if not p['err'] and #p > 0 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[i], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    n = n + 1
  end
end
return n
";

/// Marks every entry of a consumer without a heartbeat as idle for `ARGV[3]` ms (it died), so
/// the next `XAUTOCLAIM` takes them over. Returns how many were marked.
/// KEYS: streams. ARGV: group, heartbeat key prefix, idle ms, this consumer.
pub(super) const ORPHANS: &str = r"
local n = 0
for _, s in ipairs(KEYS) do
  local consumers = redis.pcall('XINFO', 'CONSUMERS', s, ARGV[1])
  if not consumers['err'] then
    for _, c in ipairs(consumers) do
      local f = {}
      for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
      if f['pending'] > 0 and f['name'] ~= ARGV[4] and redis.call('EXISTS', ARGV[2] .. f['name']) == 0 then
        for _, e in ipairs(redis.call('XPENDING', s, ARGV[1], '-', '+', 100, f['name'])) do
          if e[3] < tonumber(ARGV[3]) then
            redis.call('XCLAIM', s, ARGV[1], f['name'], 0, e[1], 'IDLE', ARGV[3], 'JUSTID')
            n = n + 1
          end
        end
      end
    end
  end
end
return n
";

/// Deletes consumers with nothing pending that have been idle longer than ARGV[2] ms, or, with
/// ARGV[3] set, that one consumer if it has nothing pending. A live consumer deleted this way is
/// recreated by its next read. KEYS: streams. ARGV: group, idle ms, consumer or ''.
pub(super) const PRUNE: &str = r"
local n = 0
for _, s in ipairs(KEYS) do
  local consumers = redis.pcall('XINFO', 'CONSUMERS', s, ARGV[1])
  if not consumers['err'] then
    for _, c in ipairs(consumers) do
      local f = {}
      for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
      if f['pending'] == 0 and (f['name'] == ARGV[3] or (ARGV[3] == '' and f['idle'] > tonumber(ARGV[2]))) then
        redis.call('XGROUP', 'DELCONSUMER', s, ARGV[1], f['name'])
        n = n + 1
      end
    end
  end
end
return n
";

/// Deletes account streams that hold nothing (nothing waiting, nothing running) and have had no
/// new entry for ARGV[2] ms, and unlists them; the account's next event creates its stream
/// again. KEYS: set of streams. ARGV: stream never deleted (the shared one), min age ms, now ms.
pub(super) const SWEEP: &str = r"
local n = 0
for _, s in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if s ~= ARGV[1] and redis.call('XLEN', s) == 0 then
    local last = 0
    local info = redis.pcall('XINFO', 'STREAM', s)
    if not info['err'] then
      for i = 1, #info, 2 do
        if info[i] == 'last-generated-id' then last = tonumber(string.match(info[i + 1], '^(%d+)')) or 0 end
      end
    end
    if tonumber(ARGV[3]) - last > tonumber(ARGV[2]) then
      redis.call('DEL', s)
      redis.call('SREM', KEYS[1], s)
      n = n + 1
    end
  end
end
return n
";

/// Entries in every stream (waiting or running) plus delayed events.
/// KEYS: set of streams, the shared stream, delayed.
pub(super) const PENDING: &str = r"
local n = redis.call('XLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])
for _, s in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if s ~= KEYS[2] then n = n + redis.call('XLEN', s) end
end
return n
";

/// Counts the events (as [`PENDING`]) and finds the earliest accept time (`created_at`, epoch ms;
/// 0 when empty) among the first entry of every stream and the next 100 delayed retries: the
/// oldest unfinished event in all but rare cases (a retry moved back to its stream behind newer
/// events), without reading whole streams. KEYS: set of streams, the shared stream, delayed.
pub(super) const BACKLOG: &str = r"
local n = redis.call('XLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])
local oldest = 0
local function consider(json)
  local ok, ev = pcall(cjson.decode, json)
  if ok and type(ev) == 'table' and type(ev['created_at']) == 'number' then
    if oldest == 0 or ev['created_at'] < oldest then oldest = ev['created_at'] end
  end
end
local function head(stream)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  if first then
    local fields = first[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'event' then consider(fields[i + 1]) end
    end
  end
end
head(KEYS[2])
for _, s in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if s ~= KEYS[2] then
    n = n + redis.call('XLEN', s)
    head(s)
  end
end
for _, m in ipairs(redis.call('ZRANGE', KEYS[3], 0, 99)) do consider(m) end
return {n, oldest}
";

-- wrk: POST /oauth/token with client_secret_post, round robin over the clients of CLIENTS_FILE
-- (one "client_id client_secret" per line); each thread starts at its own offset. The one-client
-- run uses this same script with a file of one line, so every run builds its requests alike.
local bodies = {}
for line in io.lines(os.getenv("CLIENTS_FILE")) do
  local id, secret = line:match("^(%S+)%s+(%S+)$")
  if id then bodies[#bodies + 1] = "grant_type=client_credentials&client_id=" .. id .. "&client_secret=" .. secret end
end
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local threads = 0
local next = 0

setup = function(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end

init = function(args)
  next = tonumber(offset) or 0
end

request = function()
  next = next % #bodies + 1
  return wrk.format("POST", nil, headers, bodies[next])
end

-- wrk: POST /oauth/token, each request with the next unused line of LINES_FILE (tests/bench/signed.py):
-- MODE=assertion sends it as a private_key_jwt client assertion; MODE=jwtbearer as the assertion
-- of the JWT-bearer grant (issue 30); MODE=form sends the line itself as the form body (the same
-- line each time: a token exchange, or a client credentials grant); MODE=dpop sends the client's
-- secret (CLIENT_ID, CLIENT_SECRET) with the line as the DPoP proof; MODE=secret sends the secret
-- alone, through this same per-request path (the baseline: wrk's own cost is the same in all three). Each wrk thread takes every
-- n-th line from its own offset, so no line is sent twice while the file lasts.
local threads = 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
  thread:set("stride", 2)
end

local lines = {}
local next_line
function init(args)
  for line in io.lines(os.getenv("LINES_FILE")) do lines[#lines + 1] = line end
  next_line = offset + 1
end

local mode = os.getenv("MODE")
local secret_body = "grant_type=client_credentials&client_id=" .. (os.getenv("CLIENT_ID") or "") .. "&client_secret=" .. (os.getenv("CLIENT_SECRET") or "")
local jwt_bearer_prefix = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
local assertion_prefix = "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion="

function request()
  local line = lines[next_line] or lines[1]
  next_line = next_line + stride
  if mode == "secret" then
    return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, secret_body)
  end
  if mode == "form" then
    return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, lines[1])
  end
  if mode == "jwtbearer" then
    return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, jwt_bearer_prefix .. line)
  end
  if mode == "assertion" then
    return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, assertion_prefix .. line)
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded", ["DPoP"] = line}, secret_body)
end

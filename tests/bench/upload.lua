-- wrk script: POST a 10 MiB body to /hash (the backend answers with the
-- body's hash and length only, so the response is tiny). The body is the
-- same pattern as the backend's /bytes, so run.sh can check integrity.
local size = tonumber(os.getenv("UPLOAD_BYTES") or "10485760")
local alphabet = "abcdefghijklmnopqrstuvwxyz"
wrk.method = "POST"
wrk.path = "/hash"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep(alphabet, math.ceil(size / 26)):sub(1, size)

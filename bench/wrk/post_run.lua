-- wrk -s bench/wrk/post_run.lua: POST /api/runs of the workflow $WORKFLOW (default "instant")
-- with the token $TOKEN, over wrk's keep-alive connections. (Count the answers by status with
-- the daemon's strowger_http_requests_total.)
local workflow = os.getenv("WORKFLOW") or "instant"
local token = os.getenv("TOKEN") or ""
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/api/runs",
                    {["Authorization"] = "Bearer " .. token,
                     ["Content-Type"] = "application/json"},
                    '{"workflow":"' .. workflow .. '","input":"bench ' .. counter .. '"}')
end

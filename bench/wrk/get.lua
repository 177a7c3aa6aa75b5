-- wrk -s bench/wrk/get.lua URL: GETs with the token $TOKEN (keep-alive).
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "")

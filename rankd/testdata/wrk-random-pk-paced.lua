-- A paced wrk script (tried, see docs/rankd.md): every connection waits 1 ms after each
-- answer before its next request, so the request rate is about
-- connections x 1000/s minus latency (wrk has no open-loop mode; wrk2 is not
-- packaged). Use -c 11 for about 10k requests/s.
request = function()
  return wrk.format("GET", "/api/v1/influencers/" .. math.random(1000000, 1999999))
end

delay = function()
  return 1
end

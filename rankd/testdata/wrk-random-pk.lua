request = function()
  return wrk.format("GET", "/api/v1/influencers/" .. math.random(1000000, 1999999))
end

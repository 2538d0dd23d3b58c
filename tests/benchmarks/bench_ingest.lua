-- wrk script of the ingest benchmark: realistic Events API bodies (pageviews, custom events with props and
-- revenue, referrers, campaigns), a spread of browsers and client addresses; counts the answers by status.
local paths = {"/", "/pricing", "/docs/getting-started", "/blog/cookieless-analytics", "/blog/post-42",
               "/features", "/signup", "/docs/api/events", "/about", "/changelog"}
local referrers = {"null", "\"https://www.google.com/search?q=analytics\"", "\"https://news.ycombinator.com/\"",
                   "\"https://t.co/abc\"", "null", "\"https://duckduckgo.com/\"", "null"}
local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
}
local path = os.getenv("BENCH_PATH") or "/api/event"
local domain = os.getenv("BENCH_DOMAIN") or "bench.test"
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  accepted, other = 0, 0
  math.randomseed(id * 7919 + os.time())
end

function request()
  counter = counter + 1
  local body
  local page = paths[math.random(#paths)]
  if counter % 10 == 0 then
    body = string.format('{"n":"Purchase","u":"https://%s%s","d":"%s","r":null,"p":{"plan":"pro","seats":%d},' ..
                         '"$":{"currency":"EUR","amount":"%d.99"}}', domain, page, domain, counter % 50, counter % 200)
  else
    local query = (counter % 7 == 0) and "?utm_source=newsletter&utm_medium=email&utm_campaign=nov" or ""
    body = string.format('{"n":"pageview","u":"https://%s%s%s","d":"%s","r":%s}', domain, page, query, domain,
                         referrers[math.random(#referrers)])
  end
  local headers = {["Content-Type"] = "text/plain", ["User-Agent"] = agents[math.random(#agents)],
                   ["X-Bench-Client"] = string.format("%d.%d.%d.%d", 20 + math.random(180), math.random(250),
                                                       math.random(250), math.random(250))}
  if string.sub(path, 1, 6) == "/hello" then return wrk.format("GET", path, headers) end
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  if status == 202 or status == 200 then accepted = accepted + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, thread in ipairs(threads) do
    a = a + thread:get("accepted")
    o = o + thread:get("other")
  end
  io.write(string.format("BENCH accepted=%d other=%d p50_us=%d p90_us=%d p99_us=%d errors=%d\n", a, o,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

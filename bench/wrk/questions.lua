-- Shared by the wrk scenarios: loads the load-test questions and builds authorized requests.
-- wrk runs one Lua state per thread; `setup` numbers the threads so that they take turns in the sequence.
local M = {}

local thread_count = 0
function M.setup(thread)
  thread:set("thread_id", thread_count)
  thread_count = thread_count + 1
end

-- bench/run.py writes the questions one per line (newlines inside a question become spaces).
local function read_questions(path)
  local list = {}
  for line in io.lines(path) do
    if #line > 0 then list[#list + 1] = line end
  end
  return list
end

local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

-- args: questions path, API key, mode ("sequence" | "random" | "random-component" | "batch" | "openai"), batch
-- size, first position in the sequence, wrk threads, OpenAI model id (modes "batch" and "openai").
-- "random-component" is "random" with `Cache-Control: no-cache`, which sbert-host's HTTP cache passes on to the
-- component: every request then runs an instance, answered from the component's key-value cache when warm.
function M.init(args)
  M.questions = read_questions(args[1])
  M.headers = { ["Authorization"] = "Bearer " .. args[2], ["Content-Type"] = "application/json" }
  M.mode = args[3] or "random"
  if M.mode == "random-component" then M.headers["Cache-Control"] = "no-cache" end
  M.batch = tonumber(args[4] or "32")
  M.offset = tonumber(args[5] or "0")
  M.threads = tonumber(args[6] or "1")
  M.model = args[7] or "all-minilm-l6-v2"
  M.counter = 0
  math.randomseed(os.time() + (thread_id or 0) * 7919)
end

-- The questions in order, from `offset`, the threads taking turns: no question comes twice until all have
-- been sent, and every question comes as often as in the in-process ceiling, which walks the same list.
function M.next_in_sequence()
  local i = M.offset + M.counter * M.threads + (thread_id or 0)
  M.counter = M.counter + 1
  return M.questions[(i % #M.questions) + 1]
end

function M.random()
  return M.questions[math.random(#M.questions)]
end

function M.request()
  if M.mode == "batch" then
    local parts = {}
    for k = 1, M.batch do parts[k] = json_string(M.next_in_sequence()) end
    local body = '{"model":' .. json_string(M.model) .. ',"input":[' .. table.concat(parts, ",") .. "]}"
    return wrk.format("POST", "/v1/embeddings", M.headers, body)
  end
  if M.mode == "openai" then
    -- One input per request, the questions in sequence, to the model named by `model`.
    local body = '{"model":' .. json_string(M.model) .. ',"input":' .. json_string(M.next_in_sequence()) .. "}"
    return wrk.format("POST", "/v1/embeddings", M.headers, body)
  end
  local q = (M.mode == "sequence") and M.next_in_sequence() or M.random()
  return wrk.format("GET", "/v1/encode?query=" .. urlencode(q), M.headers)
end

return M

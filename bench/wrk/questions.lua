-- Shared by the wrk scenarios: loads the load-test questions and builds authorized requests.
-- wrk runs one Lua state per thread; `setup` numbers the threads so unique mode never repeats.
local M = {}

local MAX_THREADS = 64 -- stride of the unique sequence; wrk runs far fewer threads

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

M.urlencode = urlencode
M.json_string = json_string

-- args: questions path, API key, mode ("unique" | "random" | "batch"), batch size
function M.init(args)
  M.questions = read_questions(args[1])
  M.headers = { ["Authorization"] = "Bearer " .. args[2], ["Content-Type"] = "application/json" }
  M.mode = args[3] or "random"
  M.batch = tonumber(args[4] or "32")
  M.counter = 0
  math.randomseed(os.time() + (thread_id or 0) * 7919)
end

function M.next_unique()
  -- Interleave threads so that no two requests in the run carry the same text.
  local n = #M.questions
  local i = M.counter * MAX_THREADS + (thread_id or 0)
  M.counter = M.counter + 1
  local q = M.questions[(i % n) + 1]
  if i >= n then q = q .. " (" .. math.floor(i / n) .. ")" end
  return q
end

function M.random()
  return M.questions[math.random(#M.questions)]
end

function M.request()
  if M.mode == "batch" then
    local parts = {}
    for k = 1, M.batch do parts[k] = json_string(M.next_unique()) end
    local body = '{"model":"all-minilm-l6-v2","input":[' .. table.concat(parts, ",") .. "]}"
    return wrk.format("POST", "/v1/embeddings", M.headers, body)
  end
  local q = (M.mode == "unique") and M.next_unique() or M.random()
  return wrk.format("GET", "/v1/encode?query=" .. urlencode(q), M.headers)
end

return M

-- Argo CD health of an optismith.io/ModelOptimization, from the conditions the operator writes
-- (metav1.Condition shape; the same ones kstatus and Flux read).
-- Argo CD runs custom health scripts without Lua's string library, so this script only uses the base
-- and table libraries and the `..` operator.
local hs = {}

local function conditions_by_type(status)
  local found = {}
  if status.conditions == nil then
    return found
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type ~= nil then
      found[condition.type] = condition
    end
  end
  return found
end

local function is(condition, value)
  return condition ~= nil and condition.status == value
end

local function describe(condition, fallback)
  if condition == nil then
    return fallback
  end
  local message = condition.message
  if message == nil or message == "" then
    message = fallback
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason .. ": " .. message
  end
  return message
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the resource"
  return hs
end
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    .. " (status is for generation " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local c = conditions_by_type(status)
local phase = status.phase

if is(c.Reconciling, "True") or phase == "Queued" or phase == "Running" or phase == "Retrying" then
  hs.status = "Progressing"
  hs.message = describe(c.Reconciling, "Run in phase " .. tostring(phase))
  return hs
end

if is(c.Succeeded, "True") then
  if is(c.Ready, "True") then
    hs.status = "Healthy"
    local message = "Winner selected"
    if status.winner ~= nil and status.winner.variant ~= nil then
      message = "Winner " .. status.winner.variant
      if status.winner.target ~= nil then
        message = message .. " on " .. status.winner.target
      end
      if status.winner.speedup ~= nil then
        message = message .. ", " .. status.winner.speedup .. " faster"
      end
    end
    if status.promoted ~= nil and status.promoted.uri ~= nil then
      message = message .. "; promoted to " .. status.promoted.uri
    end
    hs.message = message
    return hs
  end
  hs.status = "Degraded"
  if is(c.AccuracyGatePassed, "False") then
    hs.message = "Accuracy gate failed: " .. describe(c.AccuracyGatePassed, "no variant passed")
  elseif is(c.Promoted, "False") then
    hs.message = "Promotion failed: " .. describe(c.Promoted, "the winner was not promoted")
  else
    hs.message = describe(c.Ready, "Run complete but not ready")
  end
  return hs
end

if is(c.Succeeded, "False") or is(c.Stalled, "True") then
  hs.status = "Degraded"
  if is(c.Stalled, "True") then
    hs.message = describe(c.Stalled, "Run failed")
  else
    hs.message = describe(c.Succeeded, "Run failed")
  end
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the operator to report a result"
return hs

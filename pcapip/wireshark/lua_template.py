"""The Lua code of the Wireshark TOA plugin, with ``$placeholders`` for its data.

The code only walks tables (kinds, variants and their field positions, expert codes);
:func:`pcapip.wireshark.lua.render_plugin` fills them in from pcapip's registry, so the
plugin cannot drift from ``pcapip show``. Edit the Lua here, the data there.
"""

from __future__ import annotations

from string import Template

TEMPLATE = Template(r"""-- TOA (client address in a TCP option) dissector for Wireshark.
--
-- Written by `pcapip wireshark-plugin` (pcapip $version). Regenerate it instead of editing it:
-- the variants, field names and expert codes below are pcapip's, so Wireshark and
-- `pcapip show` name and place every field the same way.
--
-- TOA kinds: $kinds_text
-- Filters:   $filters_text; expert items toa.* (e.g. toa.unknown_length).
--
-- Use once:  tshark -X lua_script:pcapip_toa.lua -r capture.pcap -Y toa
-- Install:   copy into the personal Lua plugins folder (Help > About Wireshark > Folders), or run
--            `pcapip wireshark-plugin --install`; then restart or Analyze > Reload Lua Plugins.
--
-- Needs the "tcp.option" dissector table (Wireshark 4.0 has it). Wireshark's TCP dissector walks
-- the options (EOL ends the walk; a length below 2 or past the header stops it with its own
-- expert item) and hands each complete option of a registered kind over, kind and length bytes
-- included: an option a receiving TOA module never reaches is never shown as a TOA either.
-- Registering a kind replaces Wireshark's own dissector for it (253/254 RFC 6994 experiments,
-- 28 User Timeout); options of those kinds that are not TOAs go back to that dissector.

local PCAPIP_VERSION = "$version"

-- { filter name, label, type, integer display }
local FIELDS = {
$fields
}

-- [kind] = { [length] = variant }; field positions are { name, offset, length } from the kind byte
local VARIANTS = {
$variants
}

-- known lengths per kind, for the messages
local LENGTHS = {
$lengths
}

-- { code, meaning, expert group, severity }
local EXPERTS = {
$experts
}

local EXPERIMENTAL = { $experimental }
local EXIDS16 = { $exids16 }
local EXIDS32 = { $exids32 }
local NOT_TOA = { $not_toa }

local F_KIND, F_LEN, F_VARIANT, F_DATA = $f_kind, $f_len, $f_variant, $f_data

if set_plugin_info then
  set_plugin_info({
    version = PCAPIP_VERSION,
    description = "TOA client-address TCP options (pcapip)",
    repository = "pcapip wireshark-plugin",
  })
end

local toa = Proto("toa", "TCP Option - TOA (client address)")

local pf, declared = {}, {}
for i, f in ipairs(FIELDS) do
  local abbrev, label, ftype, disp = f[1], f[2], f[3], f[4]
  local field
  if ftype == "ipv4" then
    field = ProtoField.ipv4(abbrev, label)
  elseif ftype == "ipv6" then
    field = ProtoField.ipv6(abbrev, label)
  elseif ftype == "bytes" then
    field = ProtoField.bytes(abbrev, label)
  elseif ftype == "string" then
    field = ProtoField.string(abbrev, label)
  else
    field = ProtoField[ftype](abbrev, label, disp == "dec_hex" and base.DEC_HEX or base.DEC)
  end
  pf[abbrev] = field
  declared[i] = field
end
toa.fields = declared

local ex, ex_declared = {}, {}
for i, e in ipairs(EXPERTS) do
  ex[e[1]] = ProtoExpert.new(e[1], e[2], expert.group[e[3]], expert.severity[e[4]])
  ex_declared[i] = ex[e[1]]
end
toa.experts = ex_declared

local native = {}  -- Wireshark's own dissector of each kind taken over, if it had one

local function byte(tvb, off) return tvb(off, 1):uint() end

local function ipv4_text(tvb, off)
  return string.format("%d.%d.%d.%d", byte(tvb, off), byte(tvb, off + 1), byte(tvb, off + 2),
                       byte(tvb, off + 3))
end

local function is_v4_mapped(tvb, off, size)
  if size ~= 16 then return false end
  for i = 0, 9 do
    if byte(tvb, off + i) ~= 0 then return false end
  end
  return byte(tvb, off + 10) == 0xFF and byte(tvb, off + 11) == 0xFF
end

-- pcapip's text form: as carried (an IPv4-mapped IPv6 address is ::ffff:a.b.c.d)
local function addr_text(tvb, off, size)
  if size == 4 then return ipv4_text(tvb, off) end
  if is_v4_mapped(tvb, off, size) then return "::ffff:" .. ipv4_text(tvb, off + 12) end
  return tostring(tvb(off, size):ipv6())
end

local function all_zero(tvb, off, size)
  for i = 0, size - 1 do
    if byte(tvb, off + i) ~= 0 then return false end
  end
  return true
end

local function hostport(ip, port)
  if port == nil then return ip end
  -- string.format, not "..": with Lua 5.3+ integers and floats concatenate differently
  if string.find(ip, ":", 1, true) then return string.format("[%s]:%d", ip, port) end
  return string.format("%s:%d", ip, port)
end

local function known_exid(tvb, len)
  if len >= 6 then
    local x32 = tvb(2, 4):uint()
    if EXIDS32[x32] then return x32, EXIDS32[x32] end
  end
  if len >= 4 then
    local x16 = tvb(2, 2):uint()
    if EXIDS16[x16] then return x16, EXIDS16[x16] end
  end
  return nil, nil
end

local function packet_ip_version(pinfo)
  local text = tostring(pinfo.net_dst)
  if string.find(text, ":", 1, true) then return 6 end
  if string.find(text, "^%d+%.%d+%.%d+%.%d+$$") then return 4 end
  return nil
end

-- TOAs seen so far in the current TCP header (options arrive in order, one call each)
local seg = { frame = -1, last = -1 }
local function segment(pinfo, tvb)
  local at = tvb:offset()
  if seg.frame ~= pinfo.number or at <= seg.last then
    seg = { frame = pinfo.number, last = at, kinds = {}, first = nil }
  end
  seg.last = at
  return seg
end

-- Calling one of Wireshark's own option dissectors from Lua passes no TCP header (the TCP
-- dissector hands it over as "data", Dissector:call cannot), and some of them read it: in 4.0
-- the Fast Open cookie branch of the experimental-option dissector does, and crashes. So only
-- the calls known to ignore it are made; anything else is drawn here as plain text.
local function native_ok(kind, len, tvb)
  if native[kind] == nil then return false end
  if kind == 28 then return true end  -- User Timeout
  if EXPERIMENTAL[kind] then return not (len > 4 and tvb(2, 2):uint() == 0xF989) end
  return false
end

local function show_plain(kind, len, tvb, tree, exid, exname)
  local label = string.format("TCP Option - kind %d, length %d", kind, len)
  if exname then label = label .. ": " .. exname end
  local t = tree:add(tvb(), label)
  t:add(tvb(0, 1), string.format("Kind: %d", kind))
  t:add(tvb(1, 1), string.format("Length: %d", len))
  local rest = 2
  if exid then
    local size = exid > 0xFFFF and 4 or 2
    t:add(tvb(2, size), string.format("Experiment Identifier: 0x%0" .. (2 * size) .. "x (%s)", exid, exname))
    rest = 2 + size
  end
  if len > rest then
    local what = exid == 0xF989 and "Fast Open Cookie: " or "Data: "
    t:add(tvb(rest), what .. string.lower(tostring(tvb(rest):bytes())))
  end
  return len
end

local function hand_back(kind, len, tvb, pinfo, tree, exid, exname)
  if native_ok(kind, len, tvb) then return native[kind]:call(tvb, pinfo, tree) end
  return show_plain(kind, len, tvb, tree, exid, exname)
end

local function unknown_length(kind, len, tvb, pinfo, tree)
  local item = tree:add(toa, tvb())
  item:add(pf[F_KIND], tvb(0, 1))
  item:add(pf[F_LEN], tvb(1, 1))
  if EXPERIMENTAL[kind] then
    item:add_tvb_expert_info(ex["toa.unknown_layout"], tvb(), string.format(
      "kind %d length %d matches no known TOA layout (known lengths: %s) and is too short for "
      .. "an RFC 6994 experiment id: layout unknown", kind, len, LENGTHS[kind]))
  else
    item:add_tvb_expert_info(ex["toa.unknown_length"], tvb(), string.format(
      "TOA kind %d with length %d: no known variant has it (known lengths: %s)",
      kind, len, LENGTHS[kind]))
  end
  if len > 2 then item:add(pf[F_DATA], tvb(2)) end
  item:set_text(string.format("TCP Option - TOA? (kind %d, length %d): unknown layout", kind, len))
  if native_ok(kind, len, tvb) then native[kind]:call(tvb, pinfo, tree) end
  return len
end

function toa.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  if len < 2 then return 0 end
  local kind = byte(tvb, 0)
  local st = segment(pinfo, tvb)
  local v = VARIANTS[kind] and VARIANTS[kind][len]
  local exid, exname
  if EXPERIMENTAL[kind] then exid, exname = known_exid(tvb, len) end
  if v == nil then
    -- the rule of ToaRegistry.claims: a 253/254 option that fits no variant and can hold an
    -- RFC 6994 experiment id is that experiment, registered or not
    if (NOT_TOA[kind] and NOT_TOA[kind][len]) or (EXPERIMENTAL[kind] and len >= 4) then
      return hand_back(kind, len, tvb, pinfo, tree, exid, exname)
    end
    return unknown_length(kind, len, tvb, pinfo, tree)
  end

  local item = tree:add(toa, tvb())
  item:add(pf[F_KIND], tvb(0, 1))
  item:add(pf[F_LEN], tvb(1, 1))
  local vi = item:add(pf[F_VARIANT], tvb(), v.name)
  vi:set_text("Variant: " .. v.name .. " (" .. v.vendors .. ")")
  vi:set_generated()
  for _, p in ipairs(v.fields) do
    item:add(pf[p[1]], tvb(p[2], p[3]))
  end

  local client, cport, vip, vport
  if v.client_addr then client = addr_text(tvb, v.client_addr[2], v.client_addr[3]) end
  if v.client_port then cport = tvb(v.client_port[2], 2):uint() end
  if v.vip_addr then vip = addr_text(tvb, v.vip_addr[2], v.vip_addr[3]) end
  if v.vip_port then vport = tvb(v.vip_port[2], 2):uint() end

  if v.version and v.client_addr then
    local ver = byte(tvb, v.version[2])
    local is4 = v.client_addr[3] == 4
    if (ver == 1) ~= is4 then
      item:add_tvb_expert_info(ex["toa.bad_version"], tvb(v.version[2], 1), string.format(
        "kind %d length %d carries an IPv%d address but its version byte is %d "
        .. "(1 means IPv4, anything else IPv6)", kind, len, is4 and 4 or 6, ver))
    end
  end
  if exid then
    local alt = ""
    if exid <= 0xFFFF and v.client_port and v.client_port[2] == 2 and #v.fields == 2 then
      alt = string.format(" or a TOA whose client port is %d", exid)
    end
    item:add_tvb_expert_info(ex["toa.exp_ambiguous"], tvb(), string.format(
      "kind %d length %d starts with experiment id 0x%04x (%s): this is either that experiment%s; "
      .. "a receiving TOA module would take it as the client", kind, len, exid, exname, alt))
  end
  if client then
    local off, size = v.client_addr[2], v.client_addr[3]
    local family = size == 16 and 6 or 4
    if is_v4_mapped(tvb, off, size) then
      family = 4
      item:add_tvb_expert_info(ex["toa.v4_mapped"], tvb(off, size),
        "IPv4-mapped IPv6 address " .. client .. ": an IPv4 client (" .. ipv4_text(tvb, off + 12)
        .. ")")
    end
    local ipv = packet_ip_version(pinfo)
    if ipv and ipv ~= family then
      local extra = ""
      if family == 6 then
        extra = " (NAT64-style: an IPv4 origin must accept sockaddr_in6 to read it)"
      end
      item:add_tvb_expert_info(ex["toa.cross_family"], tvb(off, size), string.format(
        "IPv%d client in a TOA on an IPv%d packet%s", family, ipv, extra))
    end
    if all_zero(tvb, off, size) or cport == 0 then
      item:add_tvb_expert_info(ex["toa.zero_client"], tvb(off, size),
        "TOA client is " .. hostport(client, cport))
    end
  end
  if v.needs_kind_before and not st.kinds[v.needs_kind_before] then
    item:add_tvb_expert_info(ex["toa.vip_without_client"], tvb(), string.format(
      "kind %d (the VIP) is not preceded by a kind %d client option in this segment",
      kind, v.needs_kind_before))
  end
  st.kinds[kind] = true
  if client then
    local first = st.first
    if first == nil then
      st.first = { kind = kind, ip = client, port = cport }
    else
      local same_port = cport == nil or first.port == nil or cport == first.port
      if client == first.ip and same_port then
        item:add_tvb_expert_info(ex["toa.duplicate"], tvb(),
          string.format("TOA kind %d repeats the client %s", kind, client))
      else
        item:add_tvb_expert_info(ex["toa.disagree"], tvb(), string.format(
          "TOA kind %d says the client is %s but kind %d says %s", kind,
          hostport(client, cport), first.kind, hostport(first.ip, first.port)))
      end
    end
  end

  local who = ""
  if client then
    who = ": client " .. hostport(client, cport)
  elseif vip then
    who = ": VIP " .. hostport(vip, vport)
  end
  item:set_text(string.format("TCP Option - TOA %s (kind %d)%s", v.name, kind, who))
  return len
end

local ok, tcp_option = pcall(DissectorTable.get, "tcp.option")
if not ok or tcp_option == nil then
  report_failure("pcapip TOA plugin: this Wireshark has no \"tcp.option\" dissector table, "
                 .. "so TOA options cannot be decoded (Wireshark 4.0 has it)")
  return
end
local own = tostring(Dissector.get("toa"))
for kind in pairs(VARIANTS) do
  local got, h = pcall(tcp_option.get_dissector, tcp_option, kind)
  -- after Analyze > Reload Lua Plugins the table may still hold this plugin's previous handle
  if got and h ~= nil and tostring(h) ~= own then native[kind] = h end
  tcp_option:add(kind, toa)
end
""")

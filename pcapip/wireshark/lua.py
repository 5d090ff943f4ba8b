"""The Wireshark Lua dissector for TOA options, written from pcapip's registry.

Wireshark (checked with 4.0) has a ``tcp.option`` dissector table: its TCP
dissector walks the options itself (EOL ends the walk, a length below 2 or
past the header stops it with Wireshark's own expert item) and hands every
complete option whose kind is registered there to that dissector, kind and
length bytes included. Registering the TOA kinds there puts the TOA subtree
exactly where Wireshark shows the other options, and makes Wireshark's walk
the receiving module's walk: an option a TOA module would never reach never
reaches the plugin either.

Adding a kind to the table replaces Wireshark's own dissector for it (253/254
are the RFC 6994 experiments, 28 is User Timeout), so the plugin keeps the
old handle and passes back every option of such a kind that pcapip does not
read as a TOA (28 with length 4; a 253/254 option of no TOA length, which is
an RFC 6994 experiment whatever its id): Wireshark's own
view of User Timeout and of the RFC 6994 experiments is unchanged. One
exception: a Lua plugin cannot hand on the TCP header that the TCP dissector
passes its option dissectors, and in 4.0 the Fast Open cookie branch of the
experimental-option dissector reads it (tshark crashes if it is called from
Lua), so an experimental-form TFO cookie is drawn by the plugin as plain text.
Only calls known to ignore the header are made (User Timeout; experiments
other than a TFO cookie); an option of a user-added kind that Wireshark
dissects itself is drawn as plain text for the same reason.

Wireshark cannot give one filter name two field types (an IPv4 and an IPv6
``toa.addr`` make ``toa.addr == 203.0.113.1`` fail to compile and IPv6
comparisons match IPv4 options), so IPv6 addresses are ``toa.addr6`` and
``toa.vip6`` in Wireshark; see :mod:`pcapip.wireshark.layout`.

Everything that varies with the registry (kinds, lengths, field names and
positions, expert codes and severities) is data in the generated file; the
Lua code only walks that data, so the plugin cannot drift from ``pcapip show``.
"""

from __future__ import annotations

from string import Template

from pcapip import __version__
from pcapip.dissect import CODES, DEFAULT_REGISTRY, Severity, ToaRegistry
from pcapip.dissect.hf import HF
from pcapip.dissect.tcp_options import EXPERIMENTAL_KINDS, KIND_UTO
from pcapip.wireshark.layout import (
    DATA,
    KIND,
    LEN,
    NEEDS_KIND_BEFORE,
    VARIANT,
    Placement,
    VariantLayout,
    WsField,
    plugin_fields,
    variant_layouts,
)

PLUGIN_FILENAME = "pcapip_toa.lua"

# Expert codes the plugin raises, with Wireshark's expert group for each. The walk-level codes
# pcapip raises for options Wireshark never hands over (toa.after_eol, toa.after_broken,
# toa.truncated, toa.walk_broken) have Wireshark's own TCP expert items instead.
EXPERT_GROUPS: dict[str, str] = {
    "toa.unknown_length": "MALFORMED",
    "toa.bad_version": "MALFORMED",
    "toa.unknown_layout": "UNDECODED",
    "toa.exp_ambiguous": "PROTOCOL",
    "toa.v4_mapped": "PROTOCOL",
    "toa.cross_family": "PROTOCOL",
    "toa.zero_client": "PROTOCOL",
    "toa.vip_without_client": "PROTOCOL",
    "toa.disagree": "PROTOCOL",
    "toa.duplicate": "PROTOCOL",
}

_SEVERITY = {
    Severity.CHAT: "CHAT",
    Severity.NOTE: "NOTE",
    Severity.WARN: "WARN",
    Severity.ERROR: "ERROR",
}

# Standard (non-TOA) uses of a TOA kind, handed back to Wireshark: User Timeout is 28 length 4.
NOT_TOA: dict[int, tuple[int, ...]] = {KIND_UTO: (4,)}


def lua_str(text: str) -> str:
    """A Lua string literal (5.1-5.4): printable ASCII as is, everything else as \\ddd bytes."""
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def _place(p: Placement | None) -> str:
    return "nil" if p is None else f"{{ {lua_str(p.abbrev)}, {p.offset}, {p.length} }}"


def _variant_entry(lay: VariantLayout) -> str:
    v = lay.variant
    fields = ", ".join(_place(p) for p in lay.placements)
    needs = NEEDS_KIND_BEFORE.get(v.name)
    return (
        f"    [{v.length}] = {{\n"
        f"      name = {lua_str(v.name)}, vendors = {lua_str(v.vendors)},\n"
        f"      carries = {lua_str(v.carries)}, needs_kind_before = {needs or 'nil'},\n"
        f"      fields = {{ {fields} }},\n"
        f"      client_addr = {_place(lay.client_addr)}, client_port = {_place(lay.client_port)},\n"
        f"      vip_addr = {_place(lay.vip_addr)}, vip_port = {_place(lay.vip_port)},\n"
        f"      version = {_place(lay.version)},\n"
        f"    }},"
    )


def _variants_table(layouts: list[VariantLayout]) -> str:
    by_kind: dict[int, list[VariantLayout]] = {}
    for lay in layouts:
        by_kind.setdefault(lay.variant.kind, []).append(lay)
    parts = []
    for kind in sorted(by_kind):
        entries = "\n".join(_variant_entry(lay) for lay in by_kind[kind])
        parts.append(f"  [{kind}] = {{\n{entries}\n  }},")
    return "\n".join(parts)


def _int_set(values: list[int] | tuple[int, ...]) -> str:
    return ", ".join(f"[{v}] = true" for v in values)


def _filters_text(fields: list[WsField]) -> str:
    """The header comment's filter names: the protocol, then every field (addresses typed)."""
    words = ["toa"] + [
        f"{f.abbrev} ({'IPv4' if f.ftype == 'ipv4' else 'IPv6'})" if f.ftype in ("ipv4", "ipv6")
        else f.abbrev for f in fields
    ]
    lines = [""]
    for w in words:
        if lines[-1] and len(lines[-1]) + len(w) > 80:
            lines[-1] += ","
            lines.append("")
        lines[-1] += f", {w}" if lines[-1] else w
    return "\n--            ".join(lines)


#: RFC 6994 experiment ids and names: the value strings of their field registration
_EXIDS = sorted((HF["tcp.options.experimental.exid"].strings or {}).items())


def render_plugin(registry: ToaRegistry = DEFAULT_REGISTRY) -> str:
    """The complete Lua plugin for ``registry``'s kinds and variants."""
    layouts = variant_layouts(registry)
    fields = plugin_fields(registry)
    kinds = sorted(registry.kinds)
    field_rows = "\n".join(
        f"  {{ {lua_str(f.abbrev)}, {lua_str(f.label)}, {lua_str(f.ftype)}, {lua_str(f.display)} }},"
        for f in fields
    )
    expert_rows = "\n".join(
        f"  {{ {lua_str(code)}, {lua_str(CODES[code].meaning)}, {lua_str(group)}, "
        f"{lua_str(_SEVERITY[CODES[code].severity])} }},"
        for code, group in EXPERT_GROUPS.items()
    )
    lengths = "\n".join(
        f"  [{k}] = {lua_str(', '.join(map(str, registry.lengths(k))))}," for k in kinds
    )
    not_toa = ", ".join(
        f"[{k}] = {{ {_int_set(lens)} }}" for k, lens in sorted(NOT_TOA.items()) if k in kinds
    )
    return _TEMPLATE.substitute(
        version=__version__,
        kinds_text=", ".join(map(str, kinds)),
        filters_text=_filters_text(fields),
        fields=field_rows,
        variants=_variants_table(layouts),
        lengths=lengths,
        experts=expert_rows,
        experimental=_int_set(EXPERIMENTAL_KINDS),
        exids16=", ".join(f"[0x{k:04X}] = {lua_str(v)}" for k, v in _EXIDS if k <= 0xFFFF),
        exids32=", ".join(f"[0x{k:08X}] = {lua_str(v)}" for k, v in _EXIDS if k > 0xFFFF),
        not_toa=not_toa,
        f_kind=lua_str(KIND),
        f_len=lua_str(LEN),
        f_variant=lua_str(VARIANT),
        f_data=lua_str(DATA),
    )


_TEMPLATE = Template(r"""-- TOA (client address in a TCP option) dissector for Wireshark.
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

#!/usr/bin/env python3
"""Generates the scenario files of this folder: the kernel selftests of spec 8.2 (over
progs/test_sk_lookup.o) and tubular's dataplane tests of spec 9.2 (over the corpus dispatcher.o).
Run it after changing it; the JSON files are committed."""
import ipaddress, json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
OBJ = "progs/test_sk_lookup.o"


def write(name, doc):
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def ep(addr, port):
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


# ---- 8.2 redirect ---------------------------------------------------------------------------
EXT = {"4": "127.0.0.1", "6": "fd00::1"}
INT = {"4": "127.0.0.2", "6": "fd00::2", "4to6": "::ffff:127.0.0.2"}
CLIENT = {"4": "127.0.0.1:51000", "6": "[fd00::1]:51000"}

redirects = [
    # name, proto, family of traffic, prog, reuseport, listen addr, listen port, expect, with conns
    ("tcp4_redir_port", "tcp", "4", "redir_port", False, EXT["4"], 8008, "A", False),
    ("tcp4_redir_addr", "tcp", "4", "redir_ip4", False, INT["4"], 7007, "A", False),
    ("tcp4_redir_with_reuseport", "tcp", "4", "select_sock_a", True, INT["4"], 8008, "B", False),
    ("tcp4_redir_skip_reuseport", "tcp", "4", "select_sock_a_no_reuseport", True, INT["4"], 8008, "A", False),
    ("tcp6_redir_port", "tcp", "6", "redir_port", False, EXT["6"], 8008, "A", False),
    ("tcp6_redir_addr", "tcp", "6", "redir_ip6", False, INT["6"], 7007, "A", False),
    ("tcp4_to_6_redir_port", "tcp", "4", "redir_port", False, INT["4to6"], 8008, "A", False),
    ("tcp6_redir_with_reuseport", "tcp", "6", "select_sock_a", True, INT["6"], 8008, "B", False),
    ("tcp6_redir_skip_reuseport", "tcp", "6", "select_sock_a_no_reuseport", True, INT["6"], 8008, "A", False),
    ("udp4_redir_port", "udp", "4", "redir_port", False, EXT["4"], 8008, "A", False),
    ("udp4_redir_addr", "udp", "4", "redir_ip4", False, INT["4"], 7007, "A", False),
    ("udp4_redir_with_reuseport", "udp", "4", "select_sock_a", True, INT["4"], 8008, "B", False),
    ("udp4_redir_and_reuseport_with_conns", "udp", "4", "select_sock_a", True, INT["4"], 8008, "B", True),
    ("udp4_redir_skip_reuseport", "udp", "4", "select_sock_a_no_reuseport", True, INT["4"], 8008, "A", False),
    ("udp6_redir_port", "udp", "6", "redir_port", False, EXT["6"], 8008, "A", False),
    ("udp6_redir_addr", "udp", "6", "redir_ip6", False, INT["6"], 7007, "A", False),
    ("udp4_to_6_redir_port", "udp", "4", "redir_port", False, INT["4to6"], 8008, "A", False),
    ("udp6_redir_and_reuseport", "udp", "6", "select_sock_a", True, INT["6"], 8008, "B", False),
    ("udp6_redir_and_reuseport_with_conns", "udp", "6", "select_sock_a", True, INT["6"], 8008, "B", True),
    ("udp6_redir_skip_reuseport", "udp", "6", "select_sock_a_no_reuseport", True, INT["6"], 8008, "A", False),
]

for name, proto, fam, prog, reuse, laddr, lport, expect, conns in redirects:
    state = "listen" if proto == "tcp" else "bound"
    sockets = [{"name": "A", "proto": proto, "bind": ep(laddr, lport), "state": state}]
    if ":" in laddr and laddr.startswith("::ffff:"):
        sockets[0]["v6only"] = False
    doc = {"description": f"kernel selftest sk_lookup: {name.replace('_', ' ')} ({prog}) delivers to {expect}",
           "object": OBJ, "attach": [prog], "sockets": sockets}
    if reuse:
        sockets[0]["reuseport"] = "g"
        sockets.append({"name": "B", "proto": proto, "bind": ep(laddr, lport), "state": state, "reuseport": "g"})
        if conns:
            sockets.append({"name": "C", "proto": proto, "bind": ep(laddr, lport), "state": "connected",
                            "reuseport": "g", "peer": ep(laddr, lport)})
        doc["reuseport_groups"] = {"g": {"program": "select_sock_b"}}   # the kernel selftest's reuseport program
    doc["maps"] = {"redir_map": [{"key": 0, "socket": "A"}] + ([{"key": 1, "socket": "B"}] if reuse else [])}
    dst = ep(EXT[fam], 7007)
    lookups = [{"proto": proto, "from": CLIENT[fam], "to": dst, "expect": expect}]
    if prog in ("redir_port", "redir_ip4", "redir_ip6"):
        # Other ports are not redirected: nothing listens there.
        lookups.append({"proto": proto, "from": CLIENT[fam], "to": ep(EXT[fam], 7008), "expect": "none"})
    doc["lookups"] = lookups
    write("selftest_" + name, doc)

# ---- 8.2 query ------------------------------------------------------------------------------
write("selftest_query_lookup_prog", {
    "description": "kernel selftest sk_lookup: query lookup prog (attach order, detach)",
    "object": OBJ, "attach": ["lookup_pass", "lookup_pass", "lookup_drop"],
    "lookups": [
        {"query": ["lookup_pass", "lookup_pass", "lookup_drop"]},
        {"detach": 0},
        {"query": ["lookup_pass", "lookup_drop"]},
        {"replace": 1, "program": "lookup_pass"},
        {"query": ["lookup_pass", "lookup_pass"]},
    ]})

# ---- 8.2 drop on lookup / on valid ifindex --------------------------------------------------
for prog, label in (("lookup_drop", "drop_on_lookup"), ("check_ifindex", "drop_on_valid_ifindex")):
    socks, looks = [], []
    for proto in ("tcp", "udp"):
        for fam in ("4", "6"):
            n = f"{proto}{fam}"
            socks.append({"name": n, "proto": proto, "bind": ep(EXT[fam], 7007), "state": "listen" if proto == "tcp" else "bound"})
            looks.append({"proto": proto, "from": CLIENT[fam], "to": ep(EXT[fam], 7007), "ifindex": 1, "expect": "refused"})
            if prog == "check_ifindex":
                looks.append({"proto": proto, "from": CLIENT[fam], "to": ep(EXT[fam], 7007), "ifindex": 2, "expect": n})
    write("selftest_" + label, {"description": f"kernel selftest sk_lookup: {label.replace('_', ' ')} gives ECONNREFUSED",
                                "object": OBJ, "attach": [prog], "sockets": socks, "lookups": looks})

# ---- 8.2 drop on reuseport ------------------------------------------------------------------
socks, looks, maps = [], [], {}
cases = [("tcp", "4"), ("tcp", "6"), ("udp", "4"), ("tcp", "6")]
for proto, fam in dict.fromkeys(cases):
    st = "listen" if proto == "tcp" else "bound"
    socks.append({"name": f"plain_{proto}{fam}", "proto": proto, "bind": ep(EXT[fam], 7007), "state": st})
for i, (proto, fam) in enumerate(cases):
    pass
# One scenario per case: the group lives at INT:8008 and redir_map[A] must be that protocol's socket.
for i, (proto, fam) in enumerate(dict.fromkeys(cases)):
    st = "listen" if proto == "tcp" else "bound"
    write(f"selftest_drop_on_reuseport_{proto}{fam}", {
        "description": f"kernel selftest sk_lookup: {proto.upper()} IPv{fam} drop on reuseport (ECONNREFUSED despite a plain server)",
        "object": OBJ, "attach": ["select_sock_a"],
        "sockets": [
            {"name": "plain", "proto": proto, "bind": ep(EXT[fam], 7007), "state": st},
            {"name": "A", "proto": proto, "bind": ep(INT[fam], 8008), "state": st, "reuseport": "g"},
            {"name": "B", "proto": proto, "bind": ep(INT[fam], 8008), "state": st, "reuseport": "g"},
        ],
        "reuseport_groups": {"g": {"program": "reuseport_drop"}},
        "maps": {"redir_map": [{"key": 0, "socket": "A"}, {"key": 1, "socket": "B"}]},
        "lookups": [{"proto": proto, "from": CLIENT[fam], "to": ep(EXT[fam], 7007), "expect": "refused"}]})

# ---- 8.2 sk_assign helper (test_run) --------------------------------------------------------
socks = [{"name": "A", "proto": "tcp", "bind": "127.0.0.1:0"}, {"name": "B", "proto": "tcp", "bind": "127.0.0.1:0"},
         {"name": "A6", "proto": "tcp", "bind": "[fd00::1]:0"}, {"name": "B6", "proto": "tcp", "bind": "[fd00::1]:0"}]
runs = []
for prog in ("sk_assign_eexist", "sk_assign_replace_flag", "sk_assign_null", "access_ctx_sk", "ctx_narrow_access"):
    runs.append({"test_run": prog, "proto": "tcp", "from": "127.0.0.2:8008", "to": "127.0.0.1:7007", "retval": 1, "expect": "B"})
write("selftest_sk_assign_helper_v4", {
    "description": "kernel selftest sk_lookup: sk_assign helper subtests (test_run; ctx.cookie must be SERVER_B's)",
    "object": OBJ, "sockets": socks[:2], "maps": {"redir_map": [{"key": 0, "socket": "A"}, {"key": 1, "socket": "B"}]},
    "lookups": runs})
write("selftest_sk_assign_helper_v6", {
    "description": "kernel selftest sk_lookup: narrow access to ctx v6 (test_run)",
    "object": OBJ, "sockets": [dict(s, name=s["name"][0]) for s in socks[2:]],
    "maps": {"redir_map": [{"key": 0, "socket": "A"}, {"key": 1, "socket": "B"}]},
    "lookups": [{"test_run": "ctx_narrow_access", "proto": "tcp", "from": "[fd00::2]:8008", "to": "[fd00::1]:7007", "retval": 1, "expect": "B"},
                {"test_run": "lookup_drop", "proto": "tcp", "from": "[fd00::2]:8008", "to": "[fd00::1]:7007", "retval": 0, "expect": "none"},
                {"test_run": "select_sock_a", "proto": "tcp", "from": "[fd00::2]:8008", "to": "[fd00::1]:7007", "retval": 1, "expect": "A"}]})

for proto, kind in (("tcp", "established"), ("udp", "connected")):
    st = "listen" if proto == "tcp" else "bound"
    write(f"selftest_sk_assign_rejects_{proto}_{kind}", {
        "description": f"kernel selftest sk_lookup: sk_assign rejects {proto.upper()} {kind} (-ESOCKTNOSUPPORT, regular lookup continues)",
        "object": OBJ, "attach": ["sk_assign_esocknosupport"],
        "sockets": [{"name": "server", "proto": proto, "bind": "127.0.0.1:7007", "state": st},
                    {"name": "A", "proto": proto, "bind": "127.0.0.2:9000", "state": "connected", "peer": "127.0.0.3:9001"}],
        "maps": {"redir_map": [{"key": 0, "socket": "A"}]},
        "lookups": [{"proto": proto, "from": "127.0.0.2:8008", "to": "127.0.0.1:7007", "expect": "server"},
                    {"proto": proto, "from": "127.0.0.3:9001", "to": "127.0.0.2:9000", "expect": "A"}]})

# ---- 8.2 multi prog -------------------------------------------------------------------------
multi = [("pass", "pass", "127.0.0.1:7007", "S"), ("drop", "drop", "127.0.0.1:7007", "refused"),
         ("pass", "drop", "127.0.0.1:7007", "refused"), ("drop", "pass", "127.0.0.1:7007", "refused"),
         ("pass", "redir", "127.0.0.2:8008", "S"), ("redir", "pass", "127.0.0.2:8008", "S"),
         ("drop", "redir", "127.0.0.2:8008", "S"), ("redir", "drop", "127.0.0.2:8008", "S"),
         ("redir", "redir", "127.0.0.2:8008", "S")]
for p1, p2, listen, expect in multi:
    write(f"selftest_multi_prog_{p1}_{p2}", {
        "description": f"kernel selftest sk_lookup: multi prog - {p1}, {p2} (both programs run)",
        "object": OBJ, "attach": [f"multi_prog_{p1}1", f"multi_prog_{p2}2"],
        "sockets": [{"name": "S", "proto": "tcp", "bind": listen, "state": "listen"}],
        "maps": {"redir_map": [{"key": 0, "socket": "S"}]},
        "lookups": [{"proto": "tcp", "from": "127.0.0.1:51000", "to": "127.0.0.1:7007", "expect": expect},
                    {"check": "run_map", "key": 0, "value": 1}, {"check": "run_map", "key": 1, "value": 1}]})

# ---- 9.2 tubular ----------------------------------------------------------------------------
DISPATCHER = "../programs/dispatcher.o"
PROTO = {"tcp": 6, "udp": 17}


def binding_key(proto, prefix, port):
    net = ipaddress.ip_network(prefix, strict=False)
    if net.version == 4:
        ip = b"\0" * 10 + b"\xff\xff" + net.network_address.packed
        bits = 24 + 96 + net.prefixlen
    else:
        ip = net.network_address.packed
        bits = 24 + net.prefixlen
    return bits, "hex:" + (struct.pack("<IBH", bits, PROTO[proto], port) + ip).hex()


def binding(proto, prefix, port, dest_id):
    bits, key = binding_key(proto, prefix, port)
    return {"key": key, "value": "hex:" + struct.pack("<II", dest_id, bits).hex()}


def metrics(lookups, misses, errors):
    return "hex:" + struct.pack("<QQQ", lookups, misses, errors).hex()


TUB_DEFS = {"destinations": {"type": "hash", "key_size": 257, "value_size": 8, "max_entries": 1024}}


def tubular(name, desc, sockets, bindings, sockmap, lookups):
    write("tubular_" + name, {"description": "tubular: " + desc, "object": DISPATCHER, "map_definitions": TUB_DEFS,
                              "attach": ["dispatcher"], "sockets": sockets,
                              "maps": {"bindings": bindings, "sockets": [{"key": k, "socket": s} for k, s in sockmap]},
                              "lookups": lookups})


servers = [{"name": n, "proto": "tcp", "bind": f"127.0.0.1:{p}", "state": "listen"}
           for n, p in (("spectrum", 9001), ("nginx-ssl", 9002), ("new-tls-thing", 9003))]
ids = {"spectrum": 0, "nginx-ssl": 1, "new-tls-thing": 2}
tubular("binding_precedence", "TestBindingPrecedence (a /32 wildcard beats a /24 port binding)", servers, [
    binding("tcp", "1.2.3.0/24", 0, ids["spectrum"]), binding("tcp", "1.2.3.0/24", 443, ids["nginx-ssl"]),
    binding("tcp", "1.2.3.4/32", 0, ids["spectrum"]), binding("tcp", "1.2.3.4/32", 80, ids["nginx-ssl"]),
    binding("tcp", "4.3.2.0/24", 443, ids["nginx-ssl"]), binding("tcp", "4.3.2.0/25", 443, ids["new-tls-thing"])],
    [(v, k) for k, v in ids.items()],
    [{"proto": "tcp", "from": "10.0.0.1:50000", "to": to, "expect": who} for to, who in (
        ("1.2.3.1:80", "spectrum"), ("1.2.3.1:81", "spectrum"), ("1.2.3.1:443", "nginx-ssl"), ("1.2.3.4:443", "spectrum"),
        ("1.2.3.4:80", "nginx-ssl"), ("4.3.2.1:443", "new-tls-thing"), ("4.3.2.128:443", "nginx-ssl"))] +
    [{"proto": "tcp", "from": "10.0.0.1:50000", "to": "5.5.5.5:80", "expect": "none"},
     {"proto": "udp", "from": "10.0.0.1:50000", "to": "1.2.3.1:80", "expect": "none"}])

for fam, net8, host, other, client in (("4", "127.0.0.0/8", "127.0.0.1", "127.0.0.2", "10.0.0.1:50000"),
                                       ("6", "fd00::/64", "fd00::1", "fd00::2", "[fd00::99]:50000")):
    ab = [{"name": "A", "proto": "tcp", "bind": ep(host, 9001), "state": "listen"},
          {"name": "B", "proto": "tcp", "bind": ep(host, 9002), "state": "listen"}]
    if fam == "6":
        for s in ab: s["v6only"] = True
    sm = [(0, "A"), (1, "B")]
    hostnet = f"{host}/{32 if fam == '4' else 128}"
    tubular(f"sort_port_wildcard_v{fam}", "TestBindingsSortMatchesDataplane: port wildcard", ab,
            [binding("tcp", hostnet, 80, 0), binding("tcp", hostnet, 0, 1)], sm,
            [{"proto": "tcp", "from": client, "to": ep(host, 80), "expect": "A"},
             {"proto": "tcp", "from": client, "to": ep(host, 81), "expect": "B"}])
    tubular(f"sort_longer_prefix_v{fam}", "TestBindingsSortMatchesDataplane: longer prefix", ab,
            [binding("tcp", net8, 80, 0), binding("tcp", hostnet, 0, 1)], sm,
            [{"proto": "tcp", "from": client, "to": ep(host, 80), "expect": "B"},
             {"proto": "tcp", "from": client, "to": ep(other, 80), "expect": "A"}])
    tubular(f"sort_prefix_tie_breaker_v{fam}", "TestBindingsSortMatchesDataplane: prefix tie-breaker", ab,
            [binding("tcp", net8, 80, 0), binding("tcp", net8, 0, 1)], sm,
            [{"proto": "tcp", "from": client, "to": ep(host, 80), "expect": "A"},
             {"proto": "tcp", "from": client, "to": ep(host, 81), "expect": "B"}])
    tubular(f"sort_double_wildcard_v{fam}", "TestBindingsSortMatchesDataplane: double wildcard", ab,
            [binding("tcp", net8, 0, 0), binding("tcp", hostnet, 0, 1)], sm,
            [{"proto": "tcp", "from": client, "to": ep(host, 80), "expect": "B"},
             {"proto": "tcp", "from": client, "to": ep(other, 80), "expect": "A"}])

# TestAddAndRemoveBindings: TCP and UDP on 127.0.0.0/8:8080 and ::1:8080.
for proto in ("tcp", "udp"):
    st = "listen" if proto == "tcp" else "bound"
    for prefix, dst, server, client in (("127.0.0.0/8", "127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:50000"),
                                        ("::1/128", "[::1]:8080", "[::1]:8080", "[::1]:50000")):
        fam = "4" if "." in prefix else "6"
        b = binding(proto, prefix, 8080, 0)
        tubular(f"add_remove_binding_{proto}{fam}", f"TestAddAndRemoveBindings {proto}{fam}: a binding without a socket drops",
                [{"name": "server", "proto": proto, "bind": server, "state": st}], [], [],
                [{"proto": proto, "from": client, "to": dst, "expect": "server"},
                 {"update": "bindings", "key": b["key"], "value": b["value"]},
                 {"proto": proto, "from": client, "to": dst, "expect": "refused"},
                 {"delete": "bindings", "key": b["key"]},
                 {"proto": proto, "from": client, "to": dst, "expect": "server"}])

# TestMetrics, plus errors__bad_socket (an established TCP socket and a UDP socket for a TCP binding).
b = binding("tcp", "127.0.0.1/32", 8080, 0)
tubular("metrics", "TestMetrics: lookups 2, misses 1, errors 0; counters zeroed when the id is reused",
        [{"name": "S", "proto": "tcp", "bind": "127.0.0.1:9000", "state": "listen"}], [b], [],
        [{"proto": "tcp", "from": "127.0.0.1:50000", "to": "127.0.0.1:8080", "expect": "refused"},
         {"update": "sockets", "key": 0, "socket": "S"},
         {"proto": "tcp", "from": "127.0.0.1:50000", "to": "127.0.0.1:8080", "expect": "S"},
         {"check": "destination_metrics", "key": 0, "value": metrics(2, 1, 0)},
         {"delete": "bindings", "key": b["key"]},
         {"update": "destination_metrics", "key": 0, "value": metrics(0, 0, 0)},
         {"update": "bindings", "key": b["key"], "value": b["value"]},
         {"check": "destination_metrics", "key": 0, "value": metrics(0, 0, 0)}])
tubular("metrics_bad_socket", "errors__bad_socket counts sk_assign failures (established TCP, UDP for a TCP binding)",
        [{"name": "est", "proto": "tcp", "bind": "127.0.0.1:9000", "state": "connected", "peer": "127.0.0.9:40000"},
         {"name": "u", "proto": "udp", "bind": "127.0.0.1:9001", "state": "bound"}], [b], [(0, "est")],
        [{"proto": "tcp", "from": "127.0.0.1:50000", "to": "127.0.0.1:8080", "expect": "refused"},
         {"update": "sockets", "key": 0, "socket": "u"},
         {"proto": "tcp", "from": "127.0.0.1:50000", "to": "127.0.0.1:8080", "expect": "refused"},
         {"check": "destination_metrics", "key": 0, "value": metrics(2, 0, 2)}])

# TestRegisterSupportedSocketKind: tcp4, tcp6, udp4, udp6 sockets registered and reached.
kinds = [("tcp4", "tcp", "127.0.0.1:9000", "127.0.0.1/32", "127.0.0.1:8080", "127.0.0.1:50000"),
         ("tcp6", "tcp", "[::1]:9000", "::1/128", "[::1]:8080", "[::1]:50000"),
         ("udp4", "udp", "127.0.0.1:9000", "127.0.0.1/32", "127.0.0.1:8080", "127.0.0.1:50000"),
         ("udp6", "udp", "[::1]:9000", "::1/128", "[::1]:8080", "[::1]:50000")]
socks, binds, looks = [], [], []
for i, (kind, proto, bind, prefix, dst, client) in enumerate(kinds):
    s = {"name": kind, "proto": proto, "bind": bind, "state": "listen" if proto == "tcp" else "bound"}
    if "[" in bind: s["v6only"] = True
    socks.append(s)
    binds.append(binding(proto, prefix, 8080, i))
    looks.append({"proto": proto, "from": client, "to": dst, "expect": kind})
tubular("register_supported_socket_kinds", "TestRegisterSupportedSocketKind: tcp4, tcp6, udp4, udp6", socks, binds,
        [(i, k[0]) for i, k in enumerate(kinds)], looks)

# ---- the loader's corpus objects (tests/programs) -------------------------------------------
C = "../programs/"
write("corpus_redir_port", {
    "description": "corpus redir_port.o: port 7007 goes to redir_map[0], TCP and UDP, IPv4 and IPv6",
    "object": C + "redir_port.o", "attach": ["redir_port"],
    "sockets": [{"name": "A", "proto": "tcp", "bind": "127.0.0.1:8008"},
                {"name": "U6", "proto": "udp", "bind": "[fd00::1]:8008", "v6only": True}],
    "maps": {"redir_map": [{"key": 0, "socket": "A"}]},
    "lookups": [{"proto": "tcp", "from": "127.0.0.2:8008", "to": "127.0.0.1:7007", "expect": "A"},
                {"proto": "tcp", "from": "127.0.0.2:8008", "to": "127.0.0.1:7008", "expect": "none"},
                {"proto": "tcp", "from": "[fd00::2]:8008", "to": "[fd00::1]:7007", "expect": "refused"},
                {"update": "redir_map", "key": 0, "socket": "U6"},
                {"proto": "udp", "from": "[fd00::2]:8008", "to": "[fd00::1]:7007", "expect": "U6"},
                {"proto": "udp", "from": "127.0.0.2:8008", "to": "127.0.0.1:7007", "expect": "refused"}]})
for prog, fam, listen, dst, other in (("redir_ip4", "4", "127.0.0.2:7007", "127.0.0.1:7007", "127.0.0.3:7007"),
                                      ("redir_ip6", "6", "[fd00::2]:7007", "[fd00::1]:7007", "[fd00::3]:7007")):
    client = CLIENT[fam]
    write("corpus_" + prog, {
        "description": f"corpus {prog}.o: only {dst} is redirected",
        "object": C + prog + ".o", "attach": [prog],
        "sockets": [{"name": "A", "proto": "tcp", "bind": listen}],
        "maps": {"redir_map": [{"key": 0, "socket": "A"}]},
        "lookups": [{"proto": "tcp", "from": client, "to": dst, "expect": "A"},
                    {"proto": "tcp", "from": client, "to": other, "expect": "none"}]})
write("corpus_multi_prog", {
    "description": "corpus multi_prog.o: drop then redirect still delivers; every program records its run",
    "object": C + "multi_prog.o", "attach": ["multi_drop", "multi_redir", "multi_pass"],
    "sockets": [{"name": "S", "proto": "tcp", "bind": "127.0.0.2:8008"}],
    "maps": {"redir_map": [{"key": 0, "socket": "S"}]},
    "lookups": [{"proto": "tcp", "from": "127.0.0.1:51000", "to": "127.0.0.1:7007", "expect": "S"},
                {"check": "run_map", "key": 0, "value": 1}, {"check": "run_map", "key": 1, "value": 1},
                {"check": "run_map", "key": 2, "value": 1},
                {"detach": 1},
                {"proto": "tcp", "from": "127.0.0.1:51000", "to": "127.0.0.1:7007", "expect": "refused"},
                {"query": ["multi_drop", "multi_pass"]}]})
write("corpus_sk_assign_flags_and_ctx_sk", {
    "description": "corpus sk_assign_flags.o and ctx_sk_fields.o through BPF_PROG_TEST_RUN",
    "object": C + "sk_assign_flags.o",
    "sockets": [{"name": "A", "proto": "tcp", "bind": "127.0.0.1:0"}, {"name": "B", "proto": "tcp", "bind": "127.0.0.1:0"}],
    "maps": {"redir_map": [{"key": 0, "socket": "A"}, {"key": 1, "socket": "B"}]},
    "lookups": [{"test_run": "sk_assign_flags", "proto": "tcp", "from": "127.0.0.2:8008", "to": "127.0.0.1:7007", "retval": 1, "expect": "B"},
                {"test_run": "sk_assign_flags", "proto": "udp", "from": "127.0.0.2:8008", "to": "127.0.0.1:7007", "retval": 0, "expect": "none"}]})
write("corpus_ctx_sk_fields", {
    "description": "corpus ctx_sk_fields.o: bpf_sock fields of the selected listener",
    "object": C + "ctx_sk_fields.o",
    "sockets": [{"name": "L", "proto": "tcp", "bind": "127.0.0.1:7007"}, {"name": "M", "proto": "tcp", "bind": "127.0.0.1:7008", "mark": 5}],
    "maps": {"redir_map": [{"key": 0, "socket": "L"}]},
    "lookups": [{"test_run": "ctx_sk_fields", "proto": "tcp", "from": "127.0.0.2:8008", "to": "127.0.0.1:7007", "retval": 1, "expect": "L"},
                {"update": "redir_map", "key": 0, "socket": "M"},
                {"test_run": "ctx_sk_fields", "proto": "tcp", "from": "127.0.0.2:8008", "to": "127.0.0.1:7007", "retval": 0, "expect": "none"}]})


def tuple_key(fam, remote, local, rport, lport):
    def words(a):
        ip = ipaddress.ip_address(a)
        return (b"\0" * 12 + ip.packed) if ip.version == 4 else ip.packed
    return "hex:" + (words(remote) + words(local) + struct.pack(">H", rport) + struct.pack("<H", lport) + struct.pack("<I", 2 if fam == "4" else 10)).hex()


write("corpus_sockhash_tuple", {
    "description": "corpus sockhash_tuple.o: a SOCKHASH keyed by the 4-tuple, F_NO_REUSEPORT",
    "object": C + "sockhash_tuple.o", "attach": ["sockhash_tuple"],
    "sockets": [{"name": "A", "proto": "tcp", "bind": "127.0.0.5:9000", "reuseport": "g"},
                {"name": "B", "proto": "tcp", "bind": "127.0.0.5:9000", "reuseport": "g"},
                {"name": "C", "proto": "udp", "bind": "[fd00::5]:9000"}],
    "reuseport_groups": {"g": {"select": "B"}},
    "maps": {"tuple_map": [{"key": tuple_key("4", "10.0.0.1", "127.0.0.1", 4242, 80), "socket": "A"},
                           {"key": tuple_key("6", "fd00::9", "fd00::1", 4242, 53), "socket": "C"}]},
    "lookups": [{"proto": "tcp", "from": "10.0.0.1:4242", "to": "127.0.0.1:80", "expect": "A"},
                {"proto": "tcp", "from": "10.0.0.1:4243", "to": "127.0.0.1:80", "expect": "none"},
                {"proto": "udp", "from": "[fd00::9]:4242", "to": "[fd00::1]:53", "expect": "C"}]})

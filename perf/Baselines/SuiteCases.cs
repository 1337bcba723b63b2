using System.Buffers.Binary;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Baselines;

/// <summary>
/// The SK_LOOKUP benchmark suite's cases (issue 7): a trivial program, redir_port (HASH + SOCKMAP),
/// redir_ip6 (IPv6 prefix check), the tubular-style dispatcher with 10,000 and 100,000 LPM
/// bindings, the dispatcher's LPM lookups alone at 100,000 bindings, the context narrow-access checker,
/// a chain of four programs, and a rule list walked in a loop.
/// </summary>
public static class SuiteCases
{
    /// <summary>Every case name, in table order.</summary>
    public static IReadOnlyList<string> Names { get; } =
        ["trivial", "redir_port", "redir_ip6", "dispatcher_10k", "dispatcher_100k", "dispatcher6_10k", "lpm_lookup_100k", "narrow_ctx", "chain4", "rule_loop"];

    /// <summary>
    /// The dispatcher over IPv4 and IPv6 bindings at 10 to 1,000,000 bindings (issue 23 item 1's LPM rows):
    /// creatable like any case, and timed against the kernel by perf's <c>lpm dispatch</c>; not in
    /// <see cref="Names"/>, so that the whole-suite runs and tests do not fill a million bindings each.
    /// </summary>
    public static IReadOnlyList<string> LpmDispatchNames { get; } =
        ["dispatcher_10", "dispatcher_10k", "dispatcher_100k", "dispatcher_1m", "dispatcher6_10", "dispatcher6_10k", "dispatcher6_100k", "dispatcher6_1m"];

    /// <summary>True when <paramref name="name"/> is a case <see cref="Create"/> builds.</summary>
    public static bool IsCase(string name) => Names.Contains(name) || LpmDispatchNames.Contains(name);

    /// <summary>The repository root (the folder holding BpfJit.sln), found from the working directory or the binary.</summary>
    public static string Root()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "BpfJit.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("BpfJit.sln not found above the working directory or the binary");
    }

    /// <summary>The object file a case loads.</summary>
    public static string ObjectOf(string name) => Path.Combine(Root(), name switch
    {
        "trivial" => "tests/scenarios/progs/test_sk_lookup.o",
        "redir_port" => "perf/programs/redir_port.o",
        "redir_ip6" => "tests/programs/redir_ip6.o",
        _ when name.StartsWith("dispatcher", StringComparison.Ordinal) => "tests/programs/dispatcher.o",
        "lpm_lookup_100k" => "perf/programs/lpm_lookup.o",
        "narrow_ctx" => "tests/programs/narrow_ctx.o",
        "chain4" => "perf/programs/chain.o",
        "rule_loop" => "perf/programs/rule_loop.o",
        _ => throw new ArgumentException($"unknown suite case '{name}'", nameof(name)),
    });

    /// <summary>Builds case <paramref name="name"/> (the caller disposes it).</summary>
    public static SuiteCase Create(string name) => name switch
    {
        "trivial" => Trivial(),
        "redir_port" => RedirPort(),
        "redir_ip6" => RedirIp6(),
        _ when LpmDispatchNames.Contains(name) => Dispatcher(name, name[(name.IndexOf('_') + 1)..] switch
        {
            "10" => 10,
            "10k" => 10_000,
            "100k" => 100_000,
            _ => 1_000_000 - 3,   // with the three other bindings, the object's max_entries (1,000,000)
        }, name.StartsWith("dispatcher6", StringComparison.Ordinal)),
        "lpm_lookup_100k" => LpmLookup(name, 100_000),
        "narrow_ctx" => NarrowCtx(),
        "chain4" => Chain4(),
        "rule_loop" => RuleLoop(),
        _ => throw new ArgumentException($"unknown suite case '{name}'", nameof(name)),
    };

    // ---- packets -------------------------------------------------------------------------------

    /// <summary>The raw (network-order bytes read little-endian) form of IPv4 a.b.c.d.</summary>
    public static uint Ip4(int a, int b, int c, int d) => (uint)(a | b << 8 | c << 16 | d << 24);

    static Packet V4(SocketProtocol proto, uint from, ushort fromPort, uint to, ushort toPort, int ifindex = 1) =>
        new(proto, new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(from), fromPort),
            new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(to), toPort), ifindex);

    static Packet V6(SocketProtocol proto, UInt128 from, ushort fromPort, UInt128 to, ushort toPort, int ifindex = 1) =>
        new(proto, new InetEndPoint(SocketFamily.Inet6, new InetAddress(from), fromPort),
            new InetEndPoint(SocketFamily.Inet6, new InetAddress(to), toPort), ifindex);

    static readonly UInt128 Fd00 = new(0xfd00_0000_0000_0000, 0);

    static SocketProtocol Proto(Random rng) => rng.Next(4) == 0 ? SocketProtocol.Udp : SocketProtocol.Tcp;

    static UInt128 Random6(Random rng) => new((ulong)rng.NextInt64(), (ulong)rng.NextInt64());

    /// <summary>A packet from a random source to <paramref name="to"/> (IPv4 raw or IPv6 bits) on <paramref name="port"/>.</summary>
    static Packet Towards(Random rng, bool v6, UInt128 to, ushort port)
    {
        var proto = Proto(rng);
        ushort fromPort = (ushort)rng.Next(1, 65536);
        int ifindex = rng.Next(1, 5);
        return v6
            ? V6(proto, Random6(rng), fromPort, to, port, ifindex)
            : V4(proto, (uint)rng.NextInt64(), fromPort, (uint)to, port, ifindex);
    }

    static Packet Anywhere(Random rng)
    {
        bool v6 = rng.Next(3) == 0;
        return Towards(rng, v6, v6 ? Random6(rng) : (uint)rng.NextInt64(), (ushort)rng.Next(0, 65536));
    }

    static byte[] U32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    static byte[] U64(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }

    static readonly SuiteSocket TcpV4 = new(SocketFamily.Inet, SocketProtocol.Tcp);
    static readonly SuiteSocket UdpV4 = new(SocketFamily.Inet, SocketProtocol.Udp);
    static readonly SuiteSocket TcpV6 = new(SocketFamily.Inet6, SocketProtocol.Tcp);

    static readonly uint Client = Ip4(198, 51, 100, 1);
    static readonly uint Loopback = Ip4(127, 0, 0, 1);

    // ---- cases ---------------------------------------------------------------------------------

    sealed class PassBaseline : SkLookupBaseline
    {
        public override string Name => "lookup_pass";
        public override uint Run(nint ctx) => Runtime.SkLookup.SkLookupLayout.SkPass;
    }

    /// <summary>The kernel selftest's lookup_pass: <c>return SK_PASS</c>, the fixed cost of a run.</summary>
    static SuiteCase Trivial() => new("trivial", ObjectOf("trivial"), ["lookup_pass"], [], [],
        V4(SocketProtocol.Tcp, Client, 40000, Loopback, 7007), false, Anywhere, _ => [new PassBaseline()]);

    static readonly ushort[] s_redirPorts = [7007, 8080, 443, 9000, 53];

    static SuiteFill[] RedirFills(string ports, string socks) =>
    [
        // port -> index: 7007 -> TCP v4, 8080 -> UDP v4, 443 -> TCP v6, 9000 -> an empty slot.
        new(ports, U32(7007), U32(0)), new(ports, U32(8080), U32(1)), new(ports, U32(443), U32(2)), new(ports, U32(9000), U32(5)),
        new(socks, U32(0), null, 0), new(socks, U32(1), null, 1), new(socks, U32(2), null, 2),
    ];

    static SuiteCase RedirPort() => new("redir_port", ObjectOf("redir_port"), ["redir_port"], [TcpV4, UdpV4, TcpV6],
        RedirFills("ports", "socks"), V4(SocketProtocol.Tcp, Client, 40000, Loopback, 7007), true,
        rng => rng.Next(4) == 0 ? Anywhere(rng) : Towards(rng, rng.Next(3) == 0, rng.Next(3) == 0 ? Fd00 + 1 : Loopback, s_redirPorts[rng.Next(s_redirPorts.Length)]),
        maps => [new RedirPortBaseline(maps)]);

    static SuiteCase RedirIp6() => new("redir_ip6", ObjectOf("redir_ip6"), ["redir_ip6"], [TcpV6],
        [new("redir_map", U32(0), null, 0)],
        V6(SocketProtocol.Tcp, Fd00 + 2, 40000, Fd00 + 1, 7007), true,
        rng => rng.Next(4) switch
        {
            0 => Anywhere(rng),
            1 => Towards(rng, true, Fd00 + (UInt128)rng.Next(0, 3) + ((UInt128)(uint)rng.Next(2) << 64), 7007),
            2 => Towards(rng, rng.Next(2) == 0, Fd00 + 1, (ushort)rng.Next(7006, 7009)),
            _ => Towards(rng, true, Fd00 + 1, 7007),
        },
        maps => [new RedirIp6Baseline(maps)]);

    /// <summary>The destination id of /32 binding <paramref name="i"/>; ids 1..1000, socket <c>id % 4</c>.</summary>
    static uint BindingId(int i) => 1 + (uint)(i % 1000);

    /// <summary>The IPv4 address of binding <paramref name="i"/>: 10.0.0.0 + i.</summary>
    static uint BindingAddress(int i) => Ip4(10, i >> 16, (i >> 8) & 0xff, i & 0xff);

    static byte[] LpmKey(int prefixBits, SocketProtocol proto, ushort port, UInt128 ip)
    {
        var key = new byte[23];
        BinaryPrimitives.WriteUInt32LittleEndian(key, (uint)(8 + 16 + prefixBits));
        key[4] = (byte)proto;
        BinaryPrimitives.WriteUInt16LittleEndian(key.AsSpan(5), port);
        BinaryPrimitives.WriteUInt128BigEndian(key.AsSpan(7), ip);
        return key;
    }

    static UInt128 Mapped(uint raw) => InetAddress.FromIp4Raw(raw).Bits;

    static byte[] Binding(uint id, uint prefix) => [.. U32(id), .. U32(prefix)];

    /// <summary>
    /// The dispatcher with <paramref name="count"/> TCP /32 bindings on port 80 (10.0.0.0 + i → id
    /// 1 + i % 1000), a wildcard-port TCP binding for 10.0.0.0/16 (id 1001), a TCP [fd00::]/64 port 443
    /// binding (id 1002) and a TCP 10.200.0.0/16 port 80 binding whose destination has no socket
    /// (id 1003). Destinations 1..1002 map to socket id % 4 (TCP v4, UDP v4, TCP v6, TCP v4).
    /// With <paramref name="v6"/> the /32s are /128s (fd00::1:0:0 + i), the wildcard-port binding is
    /// fd00::1:0:0/96 and the socketless one fd00::2:0:0/96 port 80; the timed packet goes to an IPv6 /128.
    /// </summary>
    static SuiteCase Dispatcher(string name, int count, bool v6 = false)
    {
        var fills = v6 ? DispatcherBindings6(count) : DispatcherBindings(count);
        for (uint id = 1; id <= 1002; id++) fills.Add(new("sockets", U32(id), null, (int)(id % 4)));
        return new SuiteCase(name, ObjectOf(name), ["dispatcher"], [TcpV4, UdpV4, TcpV6, TcpV4], [.. fills],
            v6 ? DispatcherTimedPacket6(count) : DispatcherTimedPacket(count), true,
            rng => v6 ? DispatcherPacket6(rng, count) : DispatcherPacket(rng, count),
            maps => [new DispatcherBaseline(maps)]);
    }

    /// <summary>The IPv6 address of binding <paramref name="i"/>: fd00::1:0:0 + i.</summary>
    static UInt128 BindingAddress6(int i) => Fd00 + ((UInt128)1 << 32) + (UInt128)(uint)i;

    /// <summary>The IPv6 dispatcher's bindings (see <see cref="Dispatcher"/>).</summary>
    static List<SuiteFill> DispatcherBindings6(int count)
    {
        var fills = new List<SuiteFill>(count + 1010);
        for (int i = 0; i < count; i++)
            fills.Add(new("bindings", LpmKey(128, SocketProtocol.Tcp, 80, BindingAddress6(i)), Binding(BindingId(i), 128)));
        fills.Add(new("bindings", LpmKey(96, SocketProtocol.Tcp, 0, BindingAddress6(0)), Binding(1001, 96)));
        fills.Add(new("bindings", LpmKey(64, SocketProtocol.Tcp, 443, Fd00), Binding(1002, 64)));
        fills.Add(new("bindings", LpmKey(96, SocketProtocol.Tcp, 80, Fd00 + ((UInt128)2 << 32)), Binding(1003, 96)));
        return fills;
    }

    /// <summary>The timed packet hits a /128 binding in the middle whose destination is socket 2 (TCP v6).</summary>
    static Packet DispatcherTimedPacket6(int count)
    {
        int timed = count / 2 - count / 2 % 1000 + 1;
        return V6(SocketProtocol.Tcp, Fd00 + 7, 40000, BindingAddress6(timed), 80);
    }

    static Packet DispatcherPacket6(Random rng, int count) => rng.Next(6) switch
    {
        0 => Anywhere(rng),
        1 => Towards(rng, true, BindingAddress6(rng.Next(count)), (ushort)rng.Next(0, 65536)),
        2 => Towards(rng, true, Fd00 + ((UInt128)2 << 32) + (UInt128)(uint)rng.Next(), 80),
        3 => Towards(rng, true, Fd00 + (UInt128)(ulong)rng.NextInt64(), (ushort)(rng.Next(2) == 0 ? 443 : 80)),
        _ => Towards(rng, true, BindingAddress6(rng.Next(count)), 80),
    };

    /// <summary>The dispatcher's bindings (see <see cref="Dispatcher"/>).</summary>
    static List<SuiteFill> DispatcherBindings(int count)
    {
        var fills = new List<SuiteFill>(count + 1010);
        for (int i = 0; i < count; i++)
            fills.Add(new("bindings", LpmKey(96 + 32, SocketProtocol.Tcp, 80, Mapped(BindingAddress(i))), Binding(BindingId(i), 32)));
        fills.Add(new("bindings", LpmKey(96 + 16, SocketProtocol.Tcp, 0, Mapped(Ip4(10, 0, 0, 0))), Binding(1001, 16)));
        fills.Add(new("bindings", LpmKey(64, SocketProtocol.Tcp, 443, Fd00), Binding(1002, 64)));
        fills.Add(new("bindings", LpmKey(96 + 16, SocketProtocol.Tcp, 80, Mapped(Ip4(10, 200, 0, 0))), Binding(1003, 16)));
        return fills;
    }

    /// <summary>The timed packet hits a /32 binding in the middle whose destination is socket 0 (TCP v4).</summary>
    static Packet DispatcherTimedPacket(int count)
    {
        int timed = count / 2 - count / 2 % 1000 + 3;
        return V4(SocketProtocol.Tcp, Client, 40000, BindingAddress(timed), 80);
    }

    static Packet DispatcherPacket(Random rng, int count) => rng.Next(6) switch
    {
        0 => Anywhere(rng),
        1 => Towards(rng, false, BindingAddress(rng.Next(count)), (ushort)rng.Next(0, 65536)),
        2 => Towards(rng, false, Ip4(10, 200, rng.Next(256), rng.Next(256)), 80),
        3 => Towards(rng, true, Fd00 + (UInt128)(ulong)rng.NextInt64(), (ushort)(rng.Next(2) == 0 ? 443 : 80)),
        _ => Towards(rng, false, BindingAddress(rng.Next(count)), 80),
    };

    /// <summary>
    /// perf/programs/lpm_lookup.c: the dispatcher's key and four LPM lookups (exact port, port 0, the two
    /// neighbouring addresses) in the dispatcher's bindings, no socket. The timed packet (the dispatcher's)
    /// hits in all four: its /32, the 10.0.0.0/16 wildcard, and the neighbours' /32s. Program time minus
    /// trivial's is the cost of four lookups.
    /// </summary>
    static SuiteCase LpmLookup(string name, int count) => new(name, ObjectOf(name), ["lpm_lookup"], [], [.. DispatcherBindings(count)],
        DispatcherTimedPacket(count), false, rng => DispatcherPacket(rng, count), maps => [new LpmLookupBaseline(maps)]);

    static SuiteCase NarrowCtx() => new("narrow_ctx", ObjectOf("narrow_ctx"), ["narrow_ctx"], [], [],
        V6(SocketProtocol.Tcp, Fd00 + 2, 40000, Fd00 + 1, 7007), false, Anywhere, _ => [new NarrowCtxBaseline()]);

    static readonly ushort[] s_chainPorts = [22, 25, 80, 443, 7007, 8080, 9000, 1023, 1024];

    /// <summary>
    /// perf/programs/chain.o, its four programs attached in order: count, deny (192.0.2.1-20 are
    /// denied), ports, redir (as redir_port, on chain.c's own maps).
    /// </summary>
    static SuiteCase Chain4()
    {
        var fills = new List<SuiteFill>();
        for (int i = 1; i <= 20; i++) fills.Add(new("denied", U32(Ip4(192, 0, 2, i)), U32(1)));
        fills.AddRange(RedirFills("chain_port_map", "chain_socks"));
        return new SuiteCase("chain4", ObjectOf("chain4"), ["chain_count", "chain_deny", "chain_ports", "chain_redir"],
            [TcpV4, UdpV4, TcpV6], [.. fills], V4(SocketProtocol.Tcp, Client, 40000, Loopback, 7007), true,
            rng =>
            {
                if (rng.Next(5) == 0) return Anywhere(rng);
                var p = Towards(rng, rng.Next(4) == 0, rng.Next(4) == 0 ? Fd00 + 1 : Loopback, s_chainPorts[rng.Next(s_chainPorts.Length)]);
                if (p.Family == SocketFamily.Inet && rng.Next(3) == 0)
                    p = p with { From = p.From with { Address = InetAddress.FromIp4Raw(Ip4(192, 0, 2, rng.Next(1, 30))) } };
                return p;
            },
            maps =>
            [
                new ChainCountBaseline((ArrayMap)maps.First(m => m.Name == "counters")),
                new ChainDenyBaseline((HashMap)maps.First(m => m.Name == "denied")),
                new ChainPortsBaseline(),
                new RedirPortBaseline(maps, "chain_port_map", "chain_socks", "chain_redir"),
            ]);
    }

    static readonly ushort[] s_rulePorts = [22, 80, 443, 7007, 7999, 8080, 9000, 53];

    /// <summary>One rule of perf/programs/rule_loop.c: address and mask (raw network order), port range, action.</summary>
    static byte[] Rule(uint addr, uint mask, ushort lo, ushort hi, uint action) =>
        [.. U32(addr), .. U32(mask), .. BitConverter.GetBytes(lo), .. BitConverter.GetBytes(hi), .. U32(action)];

    /// <summary>
    /// perf/programs/rule_loop.o with 15 rules: eleven over 10.k.0.0/16 (every third one a drop, the others slot
    /// k % 2), then 127.0.0.0/8 ports 7000-7999 → slot 0 (TCP v4; the timed packet, 127.0.0.1:7007, walks twelve
    /// rules), 127.0.0.0/8 port 8080 → slot 1 (UDP v4), 192.0.2.0/24 → drop, any address port 9000 → slot 5 (empty).
    /// </summary>
    static SuiteCase RuleLoop()
    {
        uint mask16 = Ip4(255, 255, 0, 0), mask8 = Ip4(255, 0, 0, 0);
        var value = new List<byte>(U32(15));
        for (int k = 0; k < 11; k++) value.AddRange(Rule(Ip4(10, k, 0, 0), mask16, 1, 65535, k % 3 == 2 ? 0xffffffff : (uint)(k % 2)));
        value.AddRange(Rule(Ip4(127, 0, 0, 0), mask8, 7000, 7999, 0));
        value.AddRange(Rule(Ip4(127, 0, 0, 0), mask8, 8080, 8080, 1));
        value.AddRange(Rule(Ip4(192, 0, 2, 0), Ip4(255, 255, 255, 0), 0, 65535, 0xffffffff));
        value.AddRange(Rule(0, 0, 9000, 9000, 5));
        value.AddRange(new byte[16]);   // the sixteenth rule, past the count
        return new SuiteCase("rule_loop", ObjectOf("rule_loop"), ["rule_loop"], [TcpV4, UdpV4],
            [new("rules", U32(0), [.. value]), new("rule_socks", U32(0), null, 0), new("rule_socks", U32(1), null, 1)],
            V4(SocketProtocol.Tcp, Client, 40000, Loopback, 7007), true,
            rng => rng.Next(5) switch
            {
                0 => Anywhere(rng),
                1 => Towards(rng, false, Ip4(10, rng.Next(0, 13), rng.Next(256), rng.Next(256)), s_rulePorts[rng.Next(s_rulePorts.Length)]),
                2 => Towards(rng, false, Ip4(192, 0, 2, rng.Next(256)), s_rulePorts[rng.Next(s_rulePorts.Length)]),
                _ => Towards(rng, false, Loopback, s_rulePorts[rng.Next(s_rulePorts.Length)]),
            },
            maps => [new RuleLoopBaseline(maps)]);
    }
}

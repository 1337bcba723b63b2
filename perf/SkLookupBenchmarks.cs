using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Scenarios;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Perf;

/// <summary>
/// Socket lookup cost per packet (NetNamespace.Lookup): no program attached; redir_port; the
/// tubular dispatcher with 10,000 bindings; four programs attached. Setups are scenario files built
/// over tests/scenarios/progs/test_sk_lookup.o and tests/programs/dispatcher.o.
/// </summary>
[MemoryDiagnoser]
public class SkLookupBenchmarks
{
    ScenarioEnvironment _env = null!;
    Packet _packet;

    /// <summary>The engine.</summary>
    [Params("interpreter", "jit")]
    public string Engine { get; set; } = "";

    /// <summary>The setup.</summary>
    [Params("no_program", "redir_port", "dispatcher_10k", "four_programs")]
    public string Case { get; set; } = "";

    static string Root()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "BpfJit.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("BpfJit.sln not found");
    }

    /// <summary>Builds the namespace, checks one lookup, then times lookups.</summary>
    [GlobalSetup]
    public void Setup()
    {
        BpfJit.Runtime.SkLookup.ProgramVerification.Verifier ??= new BpfJit.Verifier.SkLookupProgramVerifier();
        string root = Root();
        string selftest = Path.Combine(root, "tests", "scenarios", "progs", "test_sk_lookup.o");
        string dispatcher = Path.Combine(root, "tests", "programs", "dispatcher.o");
        string json = Case switch
        {
            "no_program" => """{"sockets": [{"name": "S", "proto": "tcp", "bind": "127.0.0.1:7007"}]}""",
            "redir_port" => $$$"""
                {"object": "{{{selftest}}}", "attach": ["redir_port"],
                 "sockets": [{"name": "S", "proto": "tcp", "bind": "127.0.0.2:8008"}],
                 "maps": {"redir_map": [{"key": 0, "socket": "S"}]}}
                """,
            "four_programs" => $$$"""
                {"object": "{{{selftest}}}", "attach": ["lookup_pass", "multi_prog_pass1", "multi_prog_pass2", "redir_port"],
                 "sockets": [{"name": "S", "proto": "tcp", "bind": "127.0.0.2:8008"}],
                 "maps": {"redir_map": [{"key": 0, "socket": "S"}]}}
                """,
            "dispatcher_10k" => $$$"""
                {"object": "{{{dispatcher}}}", "attach": ["dispatcher"],
                 "map_definitions": {"destinations": {"type": "hash", "key_size": 257, "value_size": 8, "max_entries": 1024}},
                 "sockets": [{"name": "S", "proto": "tcp", "bind": "127.0.0.2:8008"}],
                 "maps": {"sockets": [{"key": 7, "socket": "S"}]}}
                """,
            _ => throw new ArgumentException(Case),
        };
        string file = Path.Combine(Path.GetTempPath(), $"bpfjit-bench-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, json.Replace("\\", "\\\\", StringComparison.Ordinal));
        IBpfEngine engine = Engine == "jit" ? JitEngine.Instance : InterpreterEngine.Instance;
        try { _env = ScenarioBuilder.Build(file, engine); }
        finally { File.Delete(file); }

        var to = new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), 7007);
        if (Case == "dispatcher_10k")
        {
            // 10,000 /32 port bindings on 10.0.0.0/16; the timed packet hits one of them.
            var bindings = _env.Maps["bindings"];
            var key = new byte[23];
            var value = new byte[8];
            for (int i = 0; i < 10_000; i++)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(key, 152);
                key[4] = 6;
                BinaryPrimitives.WriteUInt16LittleEndian(key.AsSpan(5), 80);
                key[17] = 0xff; key[18] = 0xff;
                key[19] = 10; key[20] = 0; key[21] = (byte)(i >> 8); key[22] = (byte)i;
                BinaryPrimitives.WriteUInt32LittleEndian(value, i == 4242 ? 7u : (uint)(i % 1000 + 8));
                BinaryPrimitives.WriteUInt32LittleEndian(value.AsSpan(4), 152);
                if (bindings.Update(key, value) != 0) throw new InvalidOperationException("binding update failed");
            }
            to = new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(BinaryPrimitives.ReadUInt32LittleEndian([10, 0, 4242 >> 8, 4242 & 0xff])), 80);
        }
        _packet = new Packet(SocketProtocol.Tcp, new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100000a), 50000), to);
        var r = _env.Namespace.Lookup(_packet);
        if (r.Socket?.Name != "S") throw new InvalidOperationException($"{Case}: lookup gave {r}, expected socket S");
    }

    /// <summary>Releases the namespace and maps.</summary>
    [GlobalCleanup]
    public void Cleanup() => _env.Dispose();

    /// <summary>One lookup.</summary>
    [Benchmark]
    public LookupOutcome Lookup() => _env.Namespace.Lookup(_packet).Outcome;
}

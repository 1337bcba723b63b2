using System.Text;
using BenchmarkDotNet.Attributes;
using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Verifier;
using BpfJit.Frontend.Elf;

namespace BpfJit.Perf;

/// <summary>
/// Verification time: a 4,000-instruction straight-line program, a deeply branching one (pruning
/// at work), a tubular-style dispatcher, and a loop that exhausts the 1,000,000-instruction budget.
/// Run: <c>dotnet run -c Release --project perf -- --filter '*VerifierBenchmarks*'</c>
/// </summary>
[MemoryDiagnoser]
public class VerifierBenchmarks
{
    /// <summary>Maps the programs reference: a SOCKMAP and a per-CPU metrics array.</summary>
    public static readonly MapInfo[] Maps = [new("socks", MapType.SockMap, 4, 8, 1024), new("metrics", MapType.PerCpuArray, 4, 24, 1024)];

    static ulong Dummy(ulong a, ulong b, ulong c, ulong d, ulong e) => 0;

    /// <summary>The helper prototypes the programs call.</summary>
    public static readonly HelperTable Helpers = new HelperTable()
        .Add(new Helper(1, "bpf_map_lookup_elem", Dummy, new HelperProto(RetType.PtrToMapValueOrNull, ArgType.ConstMapPtr, ArgType.PtrToMapKey)))
        .Add(new Helper(7, "bpf_get_prandom_u32", Dummy, new HelperProto(RetType.Integer)))
        .Add(new Helper(86, "bpf_sk_release", Dummy, new HelperProto(RetType.Integer, ArgType.PtrToSocket)))
        .Add(new Helper(124, "bpf_sk_assign", Dummy, new HelperProto(RetType.Integer, ArgType.PtrToCtx, ArgType.PtrToSocketOrNull, ArgType.Anything)));

    /// <summary>4,000 instructions without a branch: context loads, ALU, stack stores.</summary>
    public static Instruction[] StraightLine(int count = 4000)
    {
        var sb = new StringBuilder("mov %r6, %r1\n");
        int n = 1;
        while (n < count - 2)
        {
            sb.Append("ldxw %r2, [%r6+60]\nadd %r2, 7\nstxdw [%r10-").Append(8 * (1 + n % 60)).Append("], %r2\nxor %r3, %r3\n");
            n += 4;
        }
        sb.Append("mov %r0, 1\nexit\n");
        return Assembler.Assemble(sb.ToString());
    }

    /// <summary>Many sequential two-way branches whose sides differ only in dead registers, so pruning keeps it linear.</summary>
    public static Instruction[] DeepBranching(int diamonds = 500)
    {
        var sb = new StringBuilder("mov %r6, %r1\n");
        for (int i = 0; i < diamonds; i++)
            sb.Append($"ldxw %r2, [%r6+{8 + 4 * (i % 14)}]\njgt %r2, {i}, a{i}\nmov %r7, 1\nstdw [%r10-8], 1\nja b{i}\na{i}:\nmov %r7, 2\nstdw [%r10-8], 2\nb{i}:\n");
        sb.Append("mov %r0, 0\nexit\n");
        return Assembler.Assemble(sb.ToString());
    }

    /// <summary>A tubular-style dispatcher: metrics lookup and increment, sockmap lookup, sk_assign, release.</summary>
    public static Instruction[] Dispatcher()
    {
        var p = Assembler.Assemble("""
            mov %r6, %r1
            ldxw %r1, [%r6+60]
            stxw [%r10-4], %r1
            mov %r2, %r10
            add %r2, -4
            lddw %r1, 1
            call 1
            jeq %r0, 0, drop
            ldxdw %r1, [%r0+0]
            add %r1, 1
            stxdw [%r0+0], %r1
            mov %r8, %r0
            mov %r2, %r10
            add %r2, -4
            lddw %r1, 0
            call 1
            jne %r0, 0, found
            ldxdw %r1, [%r8+8]
            add %r1, 1
            stxdw [%r8+8], %r1
            ja drop
            found:
            mov %r7, %r0
            mov %r1, %r6
            mov %r2, %r7
            mov %r3, 0
            call 124
            mov %r9, %r0
            mov %r1, %r7
            call 86
            jeq %r9, 0, pass
            ldxdw %r1, [%r8+16]
            add %r1, 1
            stxdw [%r8+16], %r1
            drop:
            mov %r0, 0
            exit
            pass:
            mov %r0, 1
            exit
            """);
        for (int i = 0; i < p.Length; i++)
            if (p[i].IsLdImm64) { p[i] = p[i] with { Src = (byte)Ld64Source.MapIdx }; i++; }
        return p;
    }

    /// <summary>A loop whose bound (10^8) no path can reach within the budget.</summary>
    public static Instruction[] BudgetExhaustion() =>
        Assembler.Assemble("mov %r0, 0\nmov %r1, 0\nl:\nadd %r1, 1\njlt %r1, 100000000, l\nexit");

    /// <summary>The tubular dispatcher as clang compiles it (tests/Verifier/c/dispatcher.bin, 135 slots), maps relocated.</summary>
    public static Instruction[] ClangDispatcher()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "BpfJit.sln"))) dir = dir.Parent;
        string c = Path.Combine(dir?.FullName ?? ".", "tests", "Verifier", "c");
        var p = BpfJit.Frontend.Decoder.Decode(File.ReadAllBytes(Path.Combine(c, "dispatcher.bin")));
        foreach (var line in File.ReadAllLines(Path.Combine(c, "dispatcher.maps")))
        {
            var parts = line.Split(' ');
            int insn = int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
            p[insn] = p[insn] with { Src = (byte)Ld64Source.MapIdx, Imm = Array.FindIndex(ClangMaps, m => m.Name == parts[1]) };
        }
        return p;
    }

    /// <summary>The maps of the clang-built dispatcher.</summary>
    public static readonly MapInfo[] ClangMaps =
    [
        new("sockets", MapType.SockMap, 4, 8, 1024), new("bindings", MapType.LpmTrie, 23, 8, 1024, 1), new("destination_metrics", MapType.PerCpuArray, 4, 24, 1024),
    ];

    static readonly Instruction[] s_straight = StraightLine(), s_branchy = DeepBranching(), s_dispatcher = Dispatcher(), s_budget = BudgetExhaustion();
    static readonly Instruction[] s_clang = ClangDispatcher();

    /// <summary>The clang-built tubular dispatcher (target under 2 ms).</summary>
    [Benchmark]
    public bool TubularDispatcherClang() =>
        Verifier.Verifier.Verify(s_clang, new VerifierOptions { Helpers = Helpers, Maps = ClangMaps, LogLevel = 1 }).Accepted;

    static VerifierResult Run(Instruction[] p) =>
        Verifier.Verifier.Verify(p, new VerifierOptions { Helpers = Helpers, Maps = Maps, LogLevel = 1 });

    /// <summary>4,000 straight-line instructions.</summary>
    [Benchmark]
    public bool StraightLine4000() => Run(s_straight).Accepted;

    /// <summary>500 sequential branches.</summary>
    [Benchmark]
    public bool DeepBranching500() => Run(s_branchy).Accepted;

    /// <summary>The tubular-style dispatcher (target under 2 ms).</summary>
    [Benchmark]
    public bool TubularDispatcher() => Run(s_dispatcher).Accepted;

    /// <summary>Budget exhaustion: rejected after 1,000,001 processed instructions (target under 3 s).</summary>
    [Benchmark]
    public bool BudgetExhaustion1M() => Run(s_budget).Accepted;
}

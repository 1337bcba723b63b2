using System.Text;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Helpers;

/// <summary>bpf_trace_vprintk on both engines: the message at the sink and the result, as Linux 6.18 returns it.</summary>
[TestFixture, NonParallelizable]
public class TraceVprintkTests
{
    /// <summary>Value layout: [0, 32) the format, [32, 152) the u64 data, [152, 160) the result.</summary>
    const int ValueSize = 160;

    static string Program(int fmtSize, int dataLen) => $"""
        stw [%r10-4], 0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r6, %r0
        mov %r1, %r6
        mov %r2, {fmtSize}
        mov %r3, %r6
        add %r3, 32
        mov %r4, {dataLen}
        call {KernelHelpers.TraceVprintkId}
        stxdw [%r6+152], %r0
        out:
        mov %r0, 0
        exit
        """;

    static byte[] Initial(string fmt)
    {
        var value = new byte[ValueSize];
        Encoding.Latin1.GetBytes(fmt).CopyTo(value, 0);
        for (int i = 0; i < 12; i++) BitConverter.GetBytes((ulong)(i + 1)).CopyTo(value, 32 + 8 * i);
        return value;
    }

    /// <summary>(format, data_len, result, message): more conversions than arguments, more than 12 arguments, a data_len not a multiple of 8.</summary>
    public static readonly (string Fmt, int DataLen, long Result, string? Message)[] Cases =
    [
        ("%d %d %d %d", 32, 7, "1 2 3 4"),
        ("%d%d%d%d%d%d%d%d%d%d%d%d", 96, 15, "123456789101112"),
        ("%d %d %d %d", 24, -22, null),
        ("none", 104, -22, null),
        ("%d", 12, -22, null),
        ("none", 0, 4, "none"),
    ];

    static IEnumerable<TestCaseData> CaseData() => Cases.Select((c, i) => new TestCaseData(i).SetName($"TraceVprintk(\"{c.Fmt}\", data_len {c.DataLen})"));

    [TestCaseSource(nameof(CaseData))]
    public void FormatsAsTheKernel(int index)
    {
        var c = Cases[index];
        var previous = TracePipe.Sink;
        try
        {
            foreach (var engine in Engines.Names)
            {
                var messages = new List<string>();
                TracePipe.Sink = messages.Add;
                using var map = MapFactory.Create(MapType.Array, 4, ValueSize, 1, 0, "v");
                Assert.That(map.Update(U32(0), Initial(c.Fmt)), Is.EqualTo(0));
                Run(engine, Program(32, c.DataLen), 0, map);
                var value = new byte[ValueSize];
                Assert.That(map.Lookup(U32(0), value), Is.EqualTo(0));
                Assert.That(BitConverter.ToInt64(value, 152), Is.EqualTo(c.Result), engine);
                Assert.That(messages, Is.EqualTo(c.Message == null ? Array.Empty<string>() : new[] { c.Message }), engine);
            }
        }
        finally
        {
            TracePipe.Sink = previous;
        }
    }

    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelReturnsTheSame()
    {
        KernelBpf.RequireAvailable();
        var differences = new List<string>();
        foreach (var c in Cases)
        {
            int fd = KernelBpf.CreateMap((uint)MapType.Array, 4, ValueSize, 1, 0);
            try
            {
                Assert.That(KernelBpf.Update(fd, U32(0), Initial(c.Fmt)), Is.EqualTo(0));
                var ctx = new byte[72];
                ctx[8] = 2;
                ctx[12] = 6;
                var r = KernelBpf.TestRun(Assemble(Program(32, c.DataLen)), [fd], ctx);
                Assert.That(r.Errno, Is.EqualTo(0), "BPF_PROG_TEST_RUN");
                var value = new byte[ValueSize];
                Assert.That(KernelBpf.Lookup(fd, U32(0), value), Is.EqualTo(0));
                long got = BitConverter.ToInt64(value, 152);
                if (got != c.Result) differences.Add($"\"{c.Fmt}\" data_len {c.DataLen}: kernel {got}, here {c.Result}");
            }
            finally
            {
                KernelBpf.Close(fd);
            }
        }
        if (differences.Count > 0) KernelOracle.Differs("6.18.44-fc-v1300", string.Join("\n", differences));
    }
}

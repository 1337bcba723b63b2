using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// Unverified programs that hand a helper a pointer it must not follow (found by an audit of issue 16: each of these
/// once killed the process with an AccessViolationException or a glibc "double free"): on both checking engines the run
/// ends in a typed <see cref="BpfFaultException"/>. The callx case checks that a helper called through a register gets
/// its arguments checked as a direct call's are (the checked JIT once skipped them).
/// </summary>
[TestFixture, NonParallelizable]
public class HelperPointerFaultTests
{
    /// <summary>Name, the code before <c>mov r0, 1; exit</c>.</summary>
    static readonly (string Name, string Code)[] s_cases =
    [
        ("bpf_skc_to_tcp6_sock(0x1000)", "lddw %r1, 0x1000\ncall 136"),
        ("bpf_skc_to_tcp_sock(0x1000)", "lddw %r1, 0x1000\ncall 137"),
        ("bpf_skc_to_unix_sock(0x1000)", "lddw %r1, 0x1000\ncall 178"),
        ("bpf_timer_cancel(0x1000)", "lddw %r1, 0x1000\ncall 172"),
        ("bpf_ringbuf_submit(ctx)", "mov %r2, 0\ncall 132"),
        ("bpf_ringbuf_discard(ctx)", "mov %r2, 0\ncall 133"),
        ("bpf_spin_lock(ctx)", "call 93"),
        // callx (BPF_CALL with the helper id in a register): its arguments are checked as a direct call's.
        ("callx bpf_map_lookup_elem(0xdead0000)", "lddw %r1, 0xdead0000\nmov %r2, 1\ncall %r2"),
    ];

    public static IEnumerable<TestCaseData> Cases() =>
        from engine in FaultContainmentTests.CheckingEngines
        from c in s_cases
        select new TestCaseData(engine, c.Name).SetName($"{c.Name} is a typed fault on {engine}");

    [TestCaseSource(nameof(Cases))]
    public void A_bad_helper_pointer_is_a_typed_fault(string engine, string caseName)
    {
        var program = SkLookupProgram.Load("bad", MapPrograms.Assemble(s_cases.Single(c => c.Name == caseName).Code + "\nmov %r0, 1\nexit"), FaultContainmentTests.Checking(engine));
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:80"));
        MapEpoch.Enter();
        try
        {
            Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => program.Run(ctx.Address));
        }
        finally
        {
            MapEpoch.Exit();
        }
    }
}

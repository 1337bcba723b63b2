using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Reliability;

/// <summary>The memory-safe interpreter forgets a ring-buffer record once a helper releases it, however the helper is called.</summary>
[TestFixture]
public class InterpreterRecordReleaseTests
{
    [TestCase("call 132", TestName = "a record submitted by call is no longer the program's")]
    [TestCase("mov %r7, 132\ncall %r7", TestName = "a record submitted by callx is no longer the program's")]
    public void AReadAfterSubmitFaults(string submit)
    {
        using var ring = MapFactory.Create(MapType.RingBuf, 0, 0, 4096, 0, "rb");
        var entry = MapPrograms.Prepare("interpreter", $"""
            ldmap %r1, 0
            mov %r2, 8
            mov %r3, 0
            call 131
            jeq %r0, 0, out
            mov %r6, %r0
            stdw [%r6+0], 1
            mov %r1, %r6
            mov %r2, 0
            {submit}
            ldxdw %r0, [%r6+0]
            out:
            exit
            """, ring);
        Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => MapPrograms.Run(entry));
    }
}

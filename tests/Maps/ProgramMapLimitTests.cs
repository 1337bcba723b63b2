using BpfJit.Runtime;
using System.Text;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Maps;

/// <summary>
/// MAX_USED_MAPS: a program may reference 64 distinct maps; the 65th refuses it before verification, with the
/// kernel's message, whether or not the reference is reachable. Compared with the live kernel.
/// </summary>
[TestFixture, Category(KernelOracle.Category)]
public class ProgramMapLimitTests
{
    const string Message = "The total number of maps per program has reached the limit of 64";

    /// <summary>A program naming maps 0..count-1, each twice, the last one on a branch never taken (r0 is 0).</summary>
    static string Program(int count)
    {
        var asm = new StringBuilder("mov %r0, 0\n");
        for (int i = 0; i < count - 1; i++) asm.Append($"ldmap %r1, {i}\nldmap %r2, {i}\n");
        asm.Append("jne %r0, 1, +2\n");
        asm.Append($"ldmap %r1, {count - 1}\n");
        asm.Append("exit\n");
        return asm.ToString();
    }

    static VerifierResult Ours(int count) => BpfJit.Verifier.Verifier.Verify(MapPrograms.Assemble(Program(count)), new VerifierOptions
    {
        Helpers = BpfJit.Tests.Verifier.SkLookupTestHelpers.Table,
        Maps = [.. Enumerable.Range(0, count).Select(i => new MapInfo($"m{i}", MapType.Array, 4, 8, 1))],
    });

    [Test]
    public void The_65th_distinct_map_is_refused_and_64_are_accepted()
    {
        var refused = Ours(65);
        Assert.Multiple(() =>
        {
            Assert.That(refused.Accepted, Is.False);
            Assert.That(refused.Log.TrimEnd(), Does.EndWith(Message));
            Assert.That(Ours(64).Accepted, Is.True, Ours(64).Log);
        });
    }

    [TestCase(64)]
    [TestCase(65)]
    public void The_kernel_answers_the_same(int count)
    {
        KernelBpf.RequireAvailable();
        var fds = new List<int>();
        try
        {
            for (int i = 0; i < count; i++) fds.Add(KernelBpf.CreateMap((uint)MapType.Array, 4, 8, 1, 0));
            var kernel = KernelBpf.Load(MapPrograms.Assemble(Program(count)), fds);
            var ours = Ours(count);
            if (!KernelOracle.Agrees(kernel.Accepted == (count == 64) && (kernel.Accepted || kernel.Log.Contains(Message, StringComparison.Ordinal)),
                    () => $"{count} maps: kernel accepted={kernel.Accepted} errno={kernel.Errno}: {kernel.Log}"))
                return;
            Assert.That(ours.Accepted, Is.EqualTo(kernel.Accepted), ours.Log);
            if (!kernel.Accepted) Assert.That(ours.Log, Does.Contain(Message));
        }
        finally { foreach (int fd in fds) KernelBpf.Close(fd); }
    }
}

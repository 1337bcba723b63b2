using BpfJit.Cli.Commands;
using BpfJit.Frontend;
using BpfJit.Verifier;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Verifier;

/// <summary>The public API: facts for the JIT, log levels, the exception, the CLI verb.</summary>
[TestFixture]
public class VerifierApiTests
{
    static readonly MapInfo[] s_maps = [new("arr", MapType.Hash, 4, 16, 16), new("socks", MapType.SockMap, 4, 8, 32)];

    static VerifierResult Verify(string asm, int log = 1) =>
        BpfJit.Verifier.Verifier.Verify(new CorpusCase("api", "api", asm, s_maps, true, null, null).Assemble(),
            new VerifierOptions { Helpers = SkLookupTestHelpers.Table, Maps = s_maps, LogLevel = log });

    /// <summary>Context loads name their field; other loads have none.</summary>
    [Test]
    public void ContextLoadFacts()
    {
        var r = Verify("ldxw %r2, [%r1+60]\nldxh %r3, [%r1+36]\nldxdw %r4, [%r1+0]\nstdw [%r10-8], 0\nldxdw %r5, [%r10-8]\nmov %r0, 0\nexit");
        Assert.That(r.Accepted, Is.True, r.Log);
        Assert.That(r.Facts[0].CtxField, Is.EqualTo("local_port"));
        Assert.That(r.Facts[1].CtxField, Is.EqualTo("remote_port"));
        Assert.That(r.Facts[2].CtxField, Is.EqualTo("sk"));
        Assert.That(r.Facts[2].CtxOffset, Is.EqualTo(0));
        Assert.That(r.Facts[4].CtxField, Is.Null);
        Assert.That(r.MayReadUninitStack, Is.False);
    }

    /// <summary>Register types before each instruction, with disagreement between paths reported as null.</summary>
    [Test]
    public void RegisterTypeFacts()
    {
        var r = Verify("call 7\njeq %r0, 0, a\nmov %r6, %r10\nja b\na:\nmov %r6, 1\nb:\nmov %r0, 0\njeq %r6, 0, c\nc:\nexit");
        Assert.That(r.Accepted, Is.True, r.Log);
        Assert.That(r.Facts[0].RegTypeBefore(1), Is.EqualTo(RegType.PtrToCtx));
        Assert.That(r.Facts[0].RegTypeBefore(10), Is.EqualTo(RegType.PtrToStack));
        Assert.That(r.Facts[0].RegTypeBefore(2), Is.EqualTo(RegType.NotInit));
        Assert.That(r.Facts[5].RegTypeBefore(6), Is.Null, "scalar on one path, stack pointer on the other");
        Assert.That(r.Facts[0].Reachable, Is.True);
    }

    /// <summary>A division whose divisor is proven non-zero is marked; an unknown divisor is not.</summary>
    [Test]
    public void DivisorFacts()
    {
        var r = Verify("call 7\nmov %r1, %r0\nor %r1, 1\nmov %r2, 10\ndiv %r2, %r1\nmov %r3, 10\ndiv %r3, %r0\nmov %r0, 0\nexit");
        Assert.That(r.Accepted, Is.True, r.Log);
        Assert.That(r.Facts[4].DivisorNonZero, Is.True);
        Assert.That(r.Facts[6].DivisorNonZero, Is.False);
    }

    /// <summary>The map behind r1 at each helper call.</summary>
    [Test]
    public void MapArgumentFacts()
    {
        var r = Verify("stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, socks\ncall 1\njeq %r0, 0, out\nmov %r1, %r0\ncall 86\nout:\nmov %r0, 0\nexit");
        Assert.That(r.Accepted, Is.True, r.Log);
        Assert.That(r.Facts[5].MapArg, Is.EqualTo(1));
        Assert.That(r.Facts[8].MapArg, Is.EqualTo(-1));
    }

    /// <summary>A possible read of never-written stack is reported so the emitter zeroes the frame.</summary>
    [Test]
    public void UninitialisedStackReadIsReported()
    {
        var r = Verify("ldxdw %r2, [%r10-16]\nmov %r0, 0\nexit");
        Assert.That(r.Accepted, Is.True, r.Log);
        Assert.That(r.MayReadUninitStack, Is.True);
        Assert.That(r.Facts[0].MayReadUninitStack, Is.True);
        Assert.That(r.StackDepths[0], Is.EqualTo(16));
        var key = Verify("mov %r2, %r10\nadd %r2, -4\nldmap %r1, arr\ncall 1\nmov %r0, 0\nexit");
        Assert.That(key.MayReadUninitStack, Is.True, "a helper reading an uninitialised key");
    }

    /// <summary>Level 2 prints every instruction with the state in the kernel's notation (bpf_st_mem "imm sign").</summary>
    [Test]
    public void Level2LogShowsStates()
    {
        var r = Verify("stdw [%r10-8], -44\nldxdw %r0, [%r10-8]\njslt %r0, 0, neg\nexit\nneg:\nmov %r0, 0\nexit", log: 2);
        Assert.That(r.Accepted, Is.True, r.Log);
        Assert.That(r.Log, Does.Contain("R1=ctx() R10=fp0"));
        Assert.That(r.Log, Does.Contain("fp-8=-44"));
        Assert.That(r.Log, Does.Contain("2: (c5) if r0 s< 0x0 goto +1"));
        Assert.That(r.Log, Does.Contain("R0=-44"));
        Assert.That(r.Log, Does.Contain("processed"));
    }

    /// <summary>A level-2 log of a budget-exhausting loop is capped, and the verdict still comes.</summary>
    [Test]
    public void Level2LogIsCapped()
    {
        var r = Verify("mov %r0, 0\nmov %r1, 0\nl:\nadd %r1, 1\njlt %r1, 100000000, l\nexit", log: 2);
        Assert.That(r.Accepted, Is.False);
        Assert.That(r.Log, Does.Contain("log truncated"));
        Assert.That(r.Log, Does.Contain("BPF program is too large. Processed 1000001 insn" + Environment.NewLine + "processed 1000001 insns (limit 1000000)"));
        Assert.That(r.Log, Does.EndWith(" mark_read 0" + Environment.NewLine), "the statistics line ends the log, as in the kernel");
        Assert.That(r.Log.Length, Is.LessThan(17 << 20));
    }

    /// <summary>Level 1 shows the failing instruction and the error; the exception carries the log.</summary>
    [Test]
    public void RejectionCarriesTheLog()
    {
        var r = Verify("ldxdw %r0, [%r1+8]\nmov %r0, 0\nexit");
        Assert.That(r.Accepted, Is.False);
        Assert.That(r.ErrorInsn, Is.EqualTo(0));
        Assert.That(r.Log, Does.Contain("0: (79) r0 = *(u64 *)(r1 + 8)"));
        Assert.That(r.Error, Is.EqualTo("invalid bpf_context access off=8 size=8"));
        var e = Assert.Throws<BpfVerifierException>(() => r.ThrowIfRejected())!;
        Assert.That(e.Log, Is.EqualTo(r.Log));
        Assert.That(e, Is.InstanceOf<BpfException>());
    }

    /// <summary>Line info names the source line of the error.</summary>
    [Test]
    public void LineInfoNamesTheSource()
    {
        var prog = Assembler.Assemble("mov %r0, 2\nexit");
        var r = BpfJit.Verifier.Verifier.Verify(prog, new VerifierOptions
        {
            Helpers = SkLookupTestHelpers.Table,
            LineInfo = new Dictionary<int, string> { [1] = "prog.c:12 return 2;" },
        });
        Assert.That(r.Log, Does.Contain("prog.c:12 return 2;"));
    }

    /// <summary>bpfjit verify: 0 accepted, 1 rejected with the log, 2 bad input.</summary>
    [Test]
    public void CliVerify()
    {
        string dir = Path.Combine(Path.GetTempPath(), "bpfjit-verify-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        try
        {
            string good = Path.Combine(dir, "good.asm"), bad = Path.Combine(dir, "bad.asm"), bin = Path.Combine(dir, "p.bin");
            File.WriteAllText(good, "mov %r0, 1\nexit\n");
            File.WriteAllText(bad, "mov %r0, 2\nexit\n");
            File.WriteAllBytes(bin, Encoder.Encode(Assembler.Assemble("lddw %r1, 0\nmov %r0, 0\nexit")));
            var o = new StringWriter();
            var e = new StringWriter();
            Assert.That(BpfJit.Cli.Cli.Run(["verify", good], o, e), Is.EqualTo(0), e.ToString());
            Assert.That(BpfJit.Cli.Cli.Run(["verify", bad, "--log", "2"], o = new StringWriter(), e), Is.EqualTo(1));
            Assert.That(o.ToString(), Does.Contain("should have been in [0, 1]"));
            Assert.That(BpfJit.Cli.Cli.Run(["verify", bin], o, e), Is.EqualTo(0), o.ToString());
            Assert.That(BpfJit.Cli.Cli.Run(["verify", Path.Combine(dir, "missing.asm")], o, e), Is.EqualTo(2));
            Assert.That(BpfJit.Cli.Cli.Run(["verify", good, "--log", "8"], o, e), Is.EqualTo(2), "outside the kernel's log_level mask");
            Assert.That(VerifyCommand.ParseMaps("socks:SOCKMAP:4:8:32,d:2:4:8:1:ro"),
                Is.EqualTo(new List<MapInfo> { new("socks", MapType.SockMap, 4, 8, 32), new("d", MapType.Array, 4, 8, 1, 0, true) }));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}

/// <summary>The kernel oracle's test-run path works (sk-lookup.md section 6).</summary>
[TestFixture]
public class KernelOracleTests
{
    /// <summary>A program returning the low bit of local_port: test_run gives that bit back.</summary>
    [Test]
    public void TestRunReturnsTheVerdict()
    {
        Support.KernelBpf.RequireAvailable();
        var prog = Assembler.Assemble("ldxw %r0, [%r1+60]\nand %r0, 1\nexit");
        Assert.That(BpfJit.Verifier.Verifier.Verify(prog, new VerifierOptions { Helpers = SkLookupTestHelpers.Table }).Accepted, Is.True);
        foreach (ushort port in new ushort[] { 7007, 8008 })
        {
            var ctx = new byte[72];
            ctx[8] = 2;                                   // family AF_INET
            ctx[12] = 6;                                  // protocol TCP
            BitConverter.GetBytes((uint)port).CopyTo(ctx, 60);
            var r = Support.KernelBpf.TestRun(prog, [], ctx);
            Assert.That(r.Errno, Is.EqualTo(0));
            Assert.That(r.Retval, Is.EqualTo((uint)(port & 1)));
        }
    }
}

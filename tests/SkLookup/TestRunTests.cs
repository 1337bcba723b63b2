using BpfJit.Runtime;
using System.Buffers.Binary;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>BPF_PROG_TEST_RUN validation and results (spec 6), as a table, through every engine.</summary>
[TestFixture]
public class TestRunTests
{
    static byte[] Ctx(ushort family = 2, uint protocol = 6, uint localPort = 7007, Action<byte[]>? edit = null)
    {
        var b = new byte[72];
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), family);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), protocol);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), 0x0200007f);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(36), 8008);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(40), 0x0100007f);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(60), localPort);
        edit?.Invoke(b);
        return b;
    }

    static byte[] With(byte[] b, int at, byte value)
    {
        var c = (byte[])b.Clone();
        if (at >= c.Length) Array.Resize(ref c, at + 1);
        c[at] = value;
        return c;
    }

    // name, request, expected error (0 = ok)
    static IEnumerable<(string, Func<TestRunRequest>, int)> Table()
    {
        yield return ("valid", () => TestRunRequest.WithContext(Ctx()), 0);
        yield return ("flags", () => new TestRunRequest { CtxIn = Ctx(), Flags = 1 }, Errno.EINVAL);
        yield return ("cpu", () => new TestRunRequest { CtxIn = Ctx(), Cpu = 1 }, Errno.EINVAL);
        yield return ("batch_size", () => new TestRunRequest { CtxIn = Ctx(), BatchSize = 1 }, Errno.EINVAL);
        yield return ("data_in", () => new TestRunRequest { CtxIn = Ctx(), DataIn = true }, Errno.EINVAL);
        yield return ("data_size_in", () => new TestRunRequest { CtxIn = Ctx(), DataSizeIn = 14 }, Errno.EINVAL);
        yield return ("data_out", () => new TestRunRequest { CtxIn = Ctx(), DataOut = true }, Errno.EINVAL);
        yield return ("data_size_out", () => new TestRunRequest { CtxIn = Ctx(), DataSizeOut = 14 }, Errno.EINVAL);
        yield return ("no ctx at all", () => new TestRunRequest(), Errno.EINVAL);
        yield return ("ctx_out only: family 0", () => new TestRunRequest { CtxOut = true, CtxSizeOut = 72 }, Errno.EAFNOSUPPORT);
        yield return ("longer ctx_in, zero tail", () => new TestRunRequest { CtxIn = [.. Ctx(), .. new byte[8]] }, 0);
        yield return ("longer ctx_in, non-zero tail", () => new TestRunRequest { CtxIn = With(Ctx(), 75, 1) }, Errno.E2BIG);
        yield return ("shorter ctx_in keeps family", () => new TestRunRequest { CtxIn = Ctx()[..16] }, 0);
        yield return ("shorter ctx_in without family", () => new TestRunRequest { CtxIn = Ctx()[..8] }, Errno.EAFNOSUPPORT);
        yield return ("sk set", () => new TestRunRequest { CtxIn = With(Ctx(), 0, 1) }, Errno.EINVAL);
        yield return ("cookie high byte set", () => new TestRunRequest { CtxIn = With(Ctx(), 7, 0x80) }, Errno.EINVAL);
        yield return ("ingress_ifindex set", () => new TestRunRequest { CtxIn = With(Ctx(), 64, 1) }, Errno.EINVAL);
        yield return ("tail padding set", () => new TestRunRequest { CtxIn = With(Ctx(), 71, 1) }, Errno.EINVAL);
        yield return ("local_port 65536", () => new TestRunRequest { CtxIn = Ctx(localPort: 65536) }, Errno.ERANGE);
        yield return ("local_port 65535", () => new TestRunRequest { CtxIn = Ctx(localPort: 65535) }, 0);
        yield return ("family 0x10002 is AF_INET", () => new TestRunRequest { CtxIn = Ctx(edit: b => b[10] = 1) }, 0);
        yield return ("family 3", () => new TestRunRequest { CtxIn = Ctx(family: 3) }, Errno.EAFNOSUPPORT);
        yield return ("family AF_INET6", () => new TestRunRequest { CtxIn = Ctx(family: 10) }, 0);
        yield return ("protocol not validated", () => new TestRunRequest { CtxIn = Ctx(protocol: 0x12345) }, 0);
        yield return ("padding and v6 fields ignored for v4", () => new TestRunRequest { CtxIn = Ctx(edit: b => { b[38] = 9; b[20] = 9; }) }, 0);
        yield return ("ctx_size_out short", () => new TestRunRequest { CtxIn = Ctx(), CtxOut = true, CtxSizeOut = 16 }, Errno.ENOSPC);
        yield return ("ctx_size_in past buffer", () => new TestRunRequest { CtxIn = Ctx(), CtxSizeIn = 100 }, Errno.EFAULT);
    }

    static IEnumerable<TestCaseData> Cases()
    {
        foreach (var engine in Engines.Names)
            foreach (var (name, _, errno) in Table())
                yield return new TestCaseData(engine, name).SetName($"test_run[{engine}] {name} -> {(errno == 0 ? "0" : Errno.Name(errno))}");
    }

    [TestCaseSource(nameof(Cases))]
    public void Validation(string engine, string name)
    {
        using var stats = BpfStats.Enable();   // run_cnt counts only while statistics are on
        var (_, make, errno) = Table().Single(t => t.Item1 == name);
        var request = make();
        var program = Load(engine, "mov %r0, 1\nexit");
        var result = SkLookupTestRun.Run(program, request);
        Assert.That(result.Error, Is.EqualTo(-errno));
        if (errno == 0 || errno == Errno.ENOSPC)
        {
            Assert.That(result.Retval, Is.EqualTo(1u));
            Assert.That(program.RunCount, Is.EqualTo(1));
            if (request.CtxOut)
            {
                Assert.That(result.CtxSizeOut, Is.EqualTo(72u));
                int expectLen = (int)Math.Min(request.CtxSizeOut, 72u);
                Assert.That(result.CtxOut, Has.Length.EqualTo(expectLen));
                var echoed = (request.CtxIn ?? new byte[72]).Concat(new byte[72]).Take(expectLen).ToArray();
                Assert.That(result.CtxOut, Is.EqualTo(echoed), "input echoed back, cookie 0");
            }
        }
        else
        {
            Assert.That(result.CtxOut, Is.Null);
            Assert.That(program.RunCount, Is.EqualTo(0), "validation happens before any run");
        }
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void CookieAndVerdicts(string engine)
    {
        using var stats = BpfStats.Enable();   // run_cnt counts only while statistics are on
        var ns = new NetNamespace();
        var a = Tcp(ns, "127.0.0.1:0");
        var b = Tcp(ns, "127.0.0.1:0");
        string assign(Sock s, int flags) => $"lddw %r2, {Hex(s.Handle)}\nmov %r3, {flags}\ncall 124\n";
        // selects A and passes
        var r = SkLookupTestRun.Run(Load(engine, "mov %r6, %r1\n" + assign(a, 0) + "mov %r0, 1\nexit"), TestRunRequest.WithContext(Ctx()));
        Assert.That((r.Error, r.Retval, r.Cookie), Is.EqualTo((0, 1u, a.Cookie)));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(r.CtxOut), Is.EqualTo(a.Cookie));
        // selects A and drops: the selection is discarded, cookie 0
        r = SkLookupTestRun.Run(Load(engine, assign(a, 0) + "mov %r0, 0\nexit"), TestRunRequest.WithContext(Ctx()));
        Assert.That((r.Error, r.Retval, r.Cookie), Is.EqualTo((0, 0u, 0UL)));
        // sk_assign_eexist: B then A without REPLACE gives -EEXIST; B stays
        string eexist = "mov %r6, %r1\n" + assign(b, 0) + "mov %r1, %r6\n" + assign(a, 0) + "mov %r1, 0\nlddw %r1, -17\njne %r0, %r1, bad\nmov %r0, 1\nexit\nbad:\nmov %r0, 0\nexit";
        r = SkLookupTestRun.Run(Load(engine, eexist), TestRunRequest.WithContext(Ctx()));
        Assert.That((r.Retval, r.Cookie), Is.EqualTo((1u, b.Cookie)));
        // repeat: the selection is reset before each repetition, so an assign without REPLACE succeeds every time
        string strict = assign(b, 0) + "jne %r0, 0, bad\nmov %r0, 1\nexit\nbad:\nmov %r0, 0\nexit";
        var prog = Load(engine, strict);
        r = SkLookupTestRun.Run(prog, new TestRunRequest { CtxIn = Ctx(), CtxOut = true, CtxSizeOut = 72, Repeat = 5 });
        Assert.That((r.Retval, r.Cookie, prog.RunCount), Is.EqualTo((1u, b.Cookie, 5L)));
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void ReuseportNeedsNoReuseportFlag(string engine)
    {
        var ns = new NetNamespace();
        var r1 = Tcp(ns, "127.0.0.1:4000", reuseport: true);
        Tcp(ns, "127.0.0.1:4000", reuseport: true);
        string prog(int flags) => $"lddw %r2, {Hex(r1.Handle)}\nmov %r3, {flags}\ncall 124\nmov %r0, 1\nexit";
        var r = SkLookupTestRun.Run(Load(engine, prog(0)), TestRunRequest.WithContext(Ctx()));
        Assert.That(r.Error, Is.EqualTo(-Errno.EOPNOTSUPP));
        Assert.That(r.CtxOut, Is.Null, "no output is written");
        r = SkLookupTestRun.Run(Load(engine, prog(2)), TestRunRequest.WithContext(Ctx()));
        Assert.That((r.Error, r.Cookie), Is.EqualTo((0, r1.Cookie)));
    }
}

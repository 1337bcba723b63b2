using System.Text.Json;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

/// <summary>
/// run and bench of an SK_REUSEPORT program from a program file (<c>--type sk_reuseport</c>, verified as that type),
/// and <c>--hash N</c>, the flow hash the program reads and the group's hash pick uses.
/// </summary>
public class SkReuseportFileTests
{
    // r0 = SK_PASS when ctx->hash is odd (the group's hash then picks), SK_DROP otherwise; reads the hash like a real program.
    const string HashParity = "ldxw %r2, [%r1+32]\nmov %r0, %r2\nand %r0, 1\nexit\n";

    static string File(string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"rp2-{Guid.NewGuid():N}.asm");
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    static string[] Packet => ["--proto", "udp", "--from", "127.0.0.9:40000", "--to", "127.0.0.1:9000"];

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void AnAsmFileRunsAsSkReuseportWithTheGivenHash(string engine)
    {
        string path = File(HashParity);
        try
        {
            // 0xc0000001: odd, so SK_PASS; reciprocal_scale(0xc0000001, 4) = 3.
            var json = Json(["run", path, "--type", "sk_reuseport", "--hash", "0xc0000001", "--members", "4", "--engine", engine, .. Packet]);
            Assert.That(json.GetProperty("programType").GetString(), Is.EqualTo("sk_reuseport"));
            Assert.That(json.GetProperty("context").GetProperty("hash").GetUInt32(), Is.EqualTo(0xc0000001u));
            Assert.That(json.GetProperty("verdict").GetString(), Is.EqualTo("SK_PASS"));
            Assert.That(json.GetProperty("outcome").GetString(), Is.EqualTo("hash"));
            Assert.That(json.GetProperty("socket").GetProperty("name").GetString(), Is.EqualTo("member3"));
            var even = Json(["run", path, "--type", "sk_reuseport", "--hash", "40", "--engine", engine, .. Packet]);
            Assert.That(even.GetProperty("outcome").GetString(), Is.EqualTo("drop"));
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    [Test]
    public void TheFileIsVerifiedAsSkReuseport()
    {
        // ctx+32 is hash in struct sk_reuseport_md; a write to the context is refused for this type.
        string path = File("mov %r2, 1\nstxw [%r1+32], %r2\nmov %r0, 1\nexit\n");
        try
        {
            var (code, _, err) = Run(["run", path, "--type", "sk_reuseport", .. Packet]);
            Assert.That(code, Is.EqualTo(1), err);
            Assert.That(err, Does.Contain("verifier rejected the program"));
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    [Test]
    public void BenchTimesAFileOnBothEngines()
    {
        string path = File(HashParity);
        try
        {
            var json = Json(["bench", path, "--type", "sk_reuseport", "--hash", "1", "--seconds", "0", .. Packet]);
            Assert.That(json.GetProperty("engines").EnumerateArray().Select(e => e.GetProperty("runs").GetInt64()), Has.All.GreaterThan(0L));
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    [Test]
    public void BadTypeAndHashAreOneLine()
    {
        string path = File(HashParity);
        try
        {
            AssertBadInput(Run(["run", path, "--type", "sk_reuseport", "--hash", "-1", .. Packet]), "--hash must be a u32 (decimal or 0x hex), not '-1'");
            AssertBadInput(Run(["run", path, "--hash", "1", .. Packet]), "--hash applies to SK_REUSEPORT programs only");
            AssertBadInput(Run(["run", Repo("tests", "scenarios", "progs", "test_sk_lookup.o"), "--type", "sk_reuseport", .. Packet]),
                "--type applies to a program file (.asm, .bin): an object's or a scenario's programs have their type");
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }
}

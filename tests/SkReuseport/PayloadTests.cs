using BpfJit.Runtime.Scenarios;
using BpfJit.Tests.Support;
using BpfJit.Runtime.Sockets;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// A packet's payload reaches what a reuseport group runs: <c>Packet.WithPayload</c> (the stand-in TCP or UDP header,
/// then the bytes), <c>run</c>/<c>bench --payload HEX</c>, a scenario lookup's <c>"payload"</c>; and <c>dump</c>/<c>cfg
/// --type sk_reuseport</c> take a program file of that type.
/// </summary>
public class PayloadTests
{
    // r0 = SK_PASS when ctx->len is 13 (an 8-byte UDP header and 5 payload bytes), SK_DROP otherwise.
    const string Len13 = "ldxw %r2, [%r1+16]\nmov %r0, 0\njne %r2, 13, +1\nmov %r0, 1\nexit\n";

    // SK_PASS when the first payload byte (data + 8, past the UDP header, bounds-checked against data_end) is 0xc3.
    const string FirstByteC3 = """
        ldxdw %r2, [%r1+0]
        ldxdw %r3, [%r1+8]
        mov %r0, 0
        mov %r4, %r2
        add %r4, 9
        jgt %r4, %r3, +3
        ldxb %r5, [%r2+8]
        jne %r5, 0xc3, +1
        mov %r0, 1
        exit
        """;

    // Reads data and data_end: accepted as SK_REUSEPORT, refused as SK_LOOKUP (its context has neither).
    const string DataPointers = "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nmov %r0, 1\nexit\n";

    static string File(string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"payload-{Guid.NewGuid():N}.asm");
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    static string[] Udp => ["--type", "sk_reuseport", "--proto", "udp", "--from", "127.0.0.9:40000", "--to", "127.0.0.1:9000"];

    [Test]
    public void WithPayloadPutsTheBytesAfterTheStandInHeader()
    {
        Assert.That(InetEndPoint.TryParse("127.0.0.9:40000", out var from), Is.True);
        Assert.That(InetEndPoint.TryParse("127.0.0.1:9000", out var to), Is.True);
        var udp = new Packet(SocketProtocol.Udp, from, to).WithPayload([0xc3, 0xff, 0, 0, 1]);
        Assert.That(udp.Bytes.ToArray(), Is.EqualTo(new byte[] { 0x9c, 0x40, 0x23, 0x28, 0, 13, 0, 0, 0xc3, 0xff, 0, 0, 1 }));
        var tcp = new Packet(SocketProtocol.Tcp, from, to).WithPayload([7]);
        Assert.That(tcp.Bytes.Length, Is.EqualTo(21));
        Assert.That(tcp.Bytes.Span[13], Is.EqualTo(0x02), "a SYN");
        Assert.That(tcp.Bytes.Span[20], Is.EqualTo(7));
        Assert.Throws<ArgumentException>(() => new Packet(SocketProtocol.Udp, from, to).WithPayload(new byte[Packet.MaxPayload + 1]));
    }

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void RunGivesTheProgramThePayload(string engine)
    {
        string len = File(Len13), first = File(FirstByteC3);
        try
        {
            Assert.That(Json(["run", len, "--payload", "c3:ff:00:00:01", "--engine", engine, .. Udp]).GetProperty("verdict").GetString(), Is.EqualTo("SK_PASS"));
            Assert.That(Json(["run", len, "--payload", "c3ff0000", "--engine", engine, .. Udp]).GetProperty("verdict").GetString(), Is.EqualTo("SK_DROP"));
            Assert.That(Json(["run", len, "--engine", engine, .. Udp]).GetProperty("verdict").GetString(), Is.EqualTo("SK_DROP"));
            Assert.That(Json(["run", first, "--payload", "c3", "--engine", engine, .. Udp]).GetProperty("verdict").GetString(), Is.EqualTo("SK_PASS"));
            Assert.That(Json(["run", first, "--payload", "c4", "--engine", engine, .. Udp]).GetProperty("verdict").GetString(), Is.EqualTo("SK_DROP"));
            Assert.That(Json(["run", first, "--engine", engine, .. Udp]).GetProperty("verdict").GetString(), Is.EqualTo("SK_DROP"), "no payload: the bounds check fails");
        }
        finally
        {
            System.IO.File.Delete(len);
            System.IO.File.Delete(first);
        }
    }

    [Test]
    public void BenchTakesThePayload()
    {
        string len = File(Len13);
        try
        {
            var json = Json(["bench", len, "--payload", "c3ff000001", "--seconds", "0", .. Udp]);
            Assert.That(json.GetProperty("engines").EnumerateArray().Select(e => e.GetProperty("runs").GetInt64()), Has.All.GreaterThan(0L));
        }
        finally
        {
            System.IO.File.Delete(len);
        }
    }

    [TestCase("zz", "--payload must be hex bytes")]
    [TestCase("c3f", "--payload must be hex bytes")]
    public void ABadPayloadIsOneLineAndExitTwo(string payload, string message)
    {
        string len = File(Len13);
        try
        {
            var (code, _, err) = Run(["run", len, "--payload", payload, .. Udp]);
            Assert.That(code, Is.EqualTo(2), err);
            Assert.That(err.Trim().Split('\n'), Has.Length.EqualTo(1));
            Assert.That(err, Does.Contain(message));
        }
        finally
        {
            System.IO.File.Delete(len);
        }
    }

    [Test]
    public void AScenarioLookupsPayloadReachesTheGroupsClassicFilter()
    {
        // ldb [0] (the first payload byte: a reuseport filter's absolute loads count from the payload); ret a: the member index.
        string file = Path.Combine(Path.GetTempPath(), $"payload-{Guid.NewGuid():N}.json");
        System.IO.File.WriteAllText(file, """
            {
              "sockets": [
                {"name": "A", "proto": "udp", "bind": "127.0.0.1:9000", "reuseport": "g"},
                {"name": "B", "proto": "udp", "bind": "127.0.0.1:9000", "reuseport": "g"}
              ],
              "reuseport_groups": {"g": {"cbpf": [[48, 0, 0, 0], [22, 0, 0, 0]]}},
              "lookups": [
                {"proto": "udp", "from": "127.0.0.9:51000", "to": "127.0.0.1:9000", "payload": "hex:01ff", "expect": "B"},
                {"proto": "udp", "from": "127.0.0.9:51000", "to": "127.0.0.1:9000", "payload": "hex:00ff", "expect": "A"}
              ]
            }
            """);
        try
        {
            using var env = ScenarioBuilder.Build(file, Engines.Get("interpreter"));
            var output = new StringWriter();
            Assert.That(ScenarioRunner.Run(env, output), Is.EqualTo(new ScenarioOutcome(2, 0)), output.ToString());
            System.IO.File.WriteAllText(file, """
                {"lookups": [{"proto": "udp", "from": "127.0.0.9:1", "to": "127.0.0.1:2", "payload": "01ff"}]}
                """);
            var e = Assert.Throws<ScenarioException>(() => ScenarioBuilder.Build(file, Engines.Get("interpreter")));
            Assert.That(e!.Message, Does.Contain("$.lookups[0].payload: 'payload' must be a 'hex:' string"));
        }
        finally
        {
            System.IO.File.Delete(file);
        }
    }

    [Test]
    public void DumpAndCfgTakeTheType()
    {
        string data = File(DataPointers), len = File(Len13);
        try
        {
            var (code, dump, err) = Run(["dump", len, "--type", "sk_reuseport"]);
            Assert.That(code, Is.EqualTo(0), err);
            Assert.That(dump, Does.Contain("; ctx load len"), "compiled as SK_REUSEPORT with the verifier's facts");
            Assert.That(Run(["dump", data, "--type", "sk_reuseport"]).Code, Is.EqualTo(0));
            var (lookupCode, _, lookupErr) = Run(["dump", data, "--type", "sk_lookup"]);
            Assert.That(lookupCode, Is.EqualTo(2));
            Assert.That(lookupErr, Does.Contain("invalid bpf_context access off=8 size=8"));
            Assert.That(Json(["cfg", data, "--type", "sk_reuseport"]).GetProperty("accepted").GetBoolean(), Is.True);
            var (cfgCode, _, _) = Run(["cfg", data]);
            Assert.That(cfgCode, Is.EqualTo(1), "an .asm file is SK_LOOKUP by default");
            var (objectCode, _, objectErr) = Run(["cfg", Repo("tests", "programs", "redir_port.o"), "--type", "sk_reuseport"]);
            Assert.That(objectCode, Is.EqualTo(2));
            Assert.That(objectErr, Does.Contain("--type applies to a program file"));
        }
        finally
        {
            System.IO.File.Delete(data);
            System.IO.File.Delete(len);
        }
    }
}

using System.Buffers.Binary;
using System.Text.Json;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

public class ReplayCommandTests
{
    static readonly string Capture = Repo("examples", "captures", "dispatcher.pcapng");
    static readonly string Scenario = Repo("examples", "captures", "replay.json");

    // What examples/captures/make_capture.py says each of its packets is.
    static readonly string[] Expected =
    [
        "socket spectrum", "socket nginx-ssl", "skipped", "skipped", "socket dns", "none",
        "refused", "socket web6", "socket spectrum", "skipped", "none", "none",
    ];

    static string Decision(JsonElement p) =>
        p.GetProperty("decision").GetString() is "socket" ? $"socket {p.GetProperty("socket").GetString()}" : p.GetProperty("decision").GetString()!;

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void TheExampleCaptureGivesTheKnownDecisions(string engine)
    {
        var json = Json("replay", Capture, "--scenario", Scenario, "--engine", engine);
        Assert.That(json.GetProperty("format").GetString(), Is.EqualTo("pcapng"));
        var packets = json.GetProperty("packets").EnumerateArray().ToList();
        Assert.That(packets.Select(Decision), Is.EqualTo(Expected));
        Assert.That(packets.Select(p => p.GetProperty("number").GetInt32()), Is.EqualTo(Enumerable.Range(1, 12)));
        Assert.That(packets[7].GetProperty("to").GetString(), Is.EqualTo("[fd00::1]:80"));
        Assert.That(packets[8].GetProperty("ifindex").GetInt32(), Is.EqualTo(2), "packet 9 is on pcapng interface 1");
        var summary = json.GetProperty("summary");
        Assert.That(summary.GetProperty("sockets").GetProperty("spectrum").GetInt32(), Is.EqualTo(2));
        Assert.That(summary.GetProperty("sockets").GetProperty("web6").GetInt32(), Is.EqualTo(1));
        Assert.That(summary.GetProperty("refused").GetInt32(), Is.EqualTo(1));
        Assert.That(summary.GetProperty("none").GetInt32(), Is.EqualTo(3));
        Assert.That(summary.GetProperty("skipped").GetInt32(), Is.EqualTo(3));
        Assert.That(summary.GetProperty("total").GetInt32(), Is.EqualTo(12));
    }

    [Test]
    public void TextOutputEndsWithTheSummaryTable()
    {
        var (code, output, err) = Run("replay", Capture, "--scenario", Scenario);
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("    7  tcp 10.0.0.4:50002 -> 5.5.5.5:22: refused"));
        Assert.That(output, Does.Contain("    3  skipped: TCP SYN-ACK"));
        var table = output.Split('\n').SkipWhile(l => !l.StartsWith("decision", StringComparison.Ordinal))
            .Select(l => System.Text.RegularExpressions.Regex.Replace(l.Trim(), @"\s+", " ")).Where(l => l.Length > 0).ToList();
        Assert.That(table, Is.EqualTo(new[]
        {
            "decision packets", "socket spectrum 2", "socket nginx-ssl 1", "socket dns 1", "socket web6 1", "refused 1", "none 3", "skipped 3", "total 12",
        }));
    }

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void StatsCountTheRunsOfEveryLookupThatReachedThePrograms(string engine)
    {
        // 12 packets, 3 skipped, no established socket in the scenario: the dispatcher runs 9 times.
        var json = Json("replay", Capture, "--scenario", Scenario, "--engine", engine, "--stats");
        var programs = json.GetProperty("programs").EnumerateArray().ToList();
        Assert.That(programs.Select(p => p.GetProperty("name").GetString()), Is.EqualTo(new[] { "dispatcher" }));
        Assert.That(programs[0].GetProperty("run_cnt").GetInt64(), Is.EqualTo(9));
        Assert.That(programs[0].GetProperty("run_time_ns").GetInt64(), Is.GreaterThan(0));
        Assert.That(programs[0].GetProperty("faults").GetInt64(), Is.EqualTo(0));
        Assert.That(Json("replay", Capture, "--scenario", Scenario, "--engine", engine).TryGetProperty("programs", out _), Is.False,
            "without --stats nothing is counted or reported");
    }

    [Test]
    public void StatsAddAProgramTableToTheText()
    {
        var (code, output, err) = Run("replay", Capture, "--scenario", Scenario, "--quiet", "--stats");
        Assert.That(code, Is.EqualTo(0), err);
        var lines = output.Split('\n').Select(l => System.Text.RegularExpressions.Regex.Replace(l.Trim(), @"\s+", " ")).ToList();
        int header = lines.IndexOf("program id run_cnt run_time_ns faults");
        Assert.That(header, Is.GreaterThan(0), output);
        Assert.That(lines[header + 1], Does.Match(@"^dispatcher \d+ 9 [1-9]\d* 0$"));
    }

    // A classic pcap written here, big-endian, Linux cooked link layer: the other reader path.
    static byte[] ClassicPcap(params byte[][] frames)
    {
        var b = new List<byte>();
        void U32(uint v) { var t = new byte[4]; BinaryPrimitives.WriteUInt32BigEndian(t, v); b.AddRange(t); }
        void U16(ushort v) { var t = new byte[2]; BinaryPrimitives.WriteUInt16BigEndian(t, v); b.AddRange(t); }
        U32(0xA1B2C3D4); U16(2); U16(4); U32(0); U32(0); U32(65535); U32(113);
        foreach (var f in frames) { U32(1); U32(0); U32((uint)f.Length); U32((uint)f.Length); b.AddRange(f); }
        return b.ToArray();
    }

    static byte[] SllTcpSyn(byte[] src, byte[] dst, ushort sport, ushort dport)
    {
        var f = new byte[16 + 20 + 20];
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14), 0x0800);
        f[16] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(18), 40);
        f[16 + 9] = 6;
        src.CopyTo(f, 16 + 12);
        dst.CopyTo(f, 16 + 16);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(36), sport);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(38), dport);
        f[36 + 12] = 0x50;
        f[36 + 13] = 0x02; // SYN
        return f;
    }

    static byte[] SllUdp(byte[] src, byte[] dst, ushort sport, ushort dport, params byte[] payload)
    {
        var f = new byte[16 + 20 + 8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14), 0x0800);
        f[16] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(18), (ushort)(28 + payload.Length));
        f[16 + 9] = 17;
        src.CopyTo(f, 16 + 12);
        dst.CopyTo(f, 16 + 16);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(36), sport);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(38), dport);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(40), (ushort)(8 + payload.Length));
        payload.CopyTo(f, 44);
        return f;
    }

    [Test]
    public void ACapturedPayloadReachesTheGroupsFilter()
    {
        // The group's classic filter returns the first payload byte (ldb [0]; ret a): the member it indexes receives.
        string scenario = Temp(".json", """
            {
              "sockets": [
                {"name": "A", "proto": "udp", "bind": "127.0.0.1:9000", "reuseport": "g"},
                {"name": "B", "proto": "udp", "bind": "127.0.0.1:9000", "reuseport": "g"}
              ],
              "reuseport_groups": {"g": {"cbpf": [[48, 0, 0, 0], [22, 0, 0, 0]]}}
            }
            """);
        string capture = Temp(".pcap", ClassicPcap(
            SllUdp([127, 0, 0, 9], [127, 0, 0, 1], 51000, 9000, 1, 0xff),
            SllUdp([127, 0, 0, 9], [127, 0, 0, 1], 51000, 9000, 0, 0xff)));
        var json = Json("replay", capture, "--scenario", scenario);
        Assert.That(json.GetProperty("packets").EnumerateArray().Select(Decision), Is.EqualTo(new[] { "socket B", "socket A" }));
    }

    [Test]
    public void ABigEndianPcapWithLinuxCookedFramesIsRead()
    {
        string path = Temp(".pcap", ClassicPcap(
            SllTcpSyn([10, 0, 0, 1], [1, 2, 3, 4], 1000, 80),
            SllTcpSyn([10, 0, 0, 1], [1, 2, 3, 4], 1000, 443)));
        var json = Json("replay", path, "--scenario", Repo("examples", "dispatcher.json"));
        Assert.That(json.GetProperty("format").GetString(), Is.EqualTo("pcap"));
        Assert.That(json.GetProperty("packets").EnumerateArray().Select(Decision), Is.EqualTo(new[] { "socket nginx-ssl", "socket spectrum" }));
    }

    // A big-endian pcapng section: raw IPv4 interface (LINKTYPE_IPV4), an enhanced and a simple packet block.
    static byte[] BigEndianPcapng(byte[] packet)
    {
        var b = new List<byte>();
        void U32(uint v) { var t = new byte[4]; BinaryPrimitives.WriteUInt32BigEndian(t, v); b.AddRange(t); }
        void U16(ushort v) { var t = new byte[2]; BinaryPrimitives.WriteUInt16BigEndian(t, v); b.AddRange(t); }
        void Block(uint type, Action body)
        {
            int start = b.Count;
            U32(type); U32(0);
            body();
            while ((b.Count - start) % 4 != 0) b.Add(0);
            uint length = (uint)(b.Count - start + 4);
            U32(length);
            BinaryPrimitives.WriteUInt32BigEndian(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(b).Slice(start + 4, 4), length);
        }
        Block(0x0A0D0D0A, () => { U32(0x1A2B3C4D); U16(1); U16(0); U32(0xFFFFFFFF); U32(0xFFFFFFFF); });
        Block(1, () => { U16(228); U16(0); U32(0); });
        Block(6, () => { U32(0); U32(0); U32(0); U32((uint)packet.Length); U32((uint)packet.Length); b.AddRange(packet); });
        Block(3, () => { U32((uint)packet.Length); b.AddRange(packet); });
        return b.ToArray();
    }

    [Test]
    public void ABigEndianPcapngWithSimplePacketsIsRead()
    {
        var ip = SllTcpSyn([10, 0, 0, 1], [127, 0, 0, 1], 1000, 9001)[16..];
        string path = Temp(".pcapng", BigEndianPcapng(ip));
        var json = Json("replay", path, "--scenario", Scenario);
        Assert.That(json.GetProperty("packets").EnumerateArray().Select(Decision), Is.EqualTo(new[] { "socket spectrum", "socket spectrum" }));
    }

    [Test]
    public void MalformedCapturesNameTheFileAndPacket()
    {
        var good = SllTcpSyn([10, 0, 0, 1], [1, 2, 3, 4], 1000, 80);
        var cut = ClassicPcap(good, good)[..^10];
        string path = Temp(".pcap", cut);
        AssertBadInput(Run("replay", path, "--scenario", Scenario), path, "packet 2", "runs past the end of the file");

        var shortIp = ClassicPcap(good, good[..30]);
        path = Temp(".pcap", shortIp);
        AssertBadInput(Run("replay", path, "--scenario", Scenario), path, "packet 2: IPv4 header cut short");

        path = Temp(".pcap", "not a capture at all"u8.ToArray());
        AssertBadInput(Run("replay", path, "--scenario", Scenario), path, "not a pcap or pcapng file");

        var pcapng = File.ReadAllBytes(Capture);
        path = Temp(".pcapng", pcapng[..^3]);
        AssertBadInput(Run("replay", path, "--scenario", Scenario), path, "block at byte");
    }

    [Test]
    public void TheCommittedCaptureIsWhatItsScriptWrites()
    {
        string? python = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Select(d => Path.Combine(d, "python3")).FirstOrDefault(File.Exists);
        if (python == null) Assert.Ignore("python3 is not on PATH: examples/captures/make_capture.py not rerun");
        string output = Path.Combine(Path.GetTempPath(), $"bpfjit-{Guid.NewGuid():n}.pcapng");
        var start = new System.Diagnostics.ProcessStartInfo(python, [Repo("examples", "captures", "make_capture.py"), output]) { UseShellExecute = false };
        using (var process = System.Diagnostics.Process.Start(start)!)
        {
            process.WaitForExit();
            Assert.That(process.ExitCode, Is.EqualTo(0));
        }
        Assert.That(File.ReadAllBytes(output), Is.EqualTo(File.ReadAllBytes(Capture)));
    }

    [Test]
    public void UsageErrors()
    {
        AssertBadInput(Run("replay", Capture), "--scenario is required");
        AssertBadInput(Run("replay", "missing.pcap", "--scenario", Scenario), "missing.pcap: no such file");
        AssertBadInput(Run("replay", Capture, "--scenario", Repo("examples", "nope.json")), "nope.json");
    }
}

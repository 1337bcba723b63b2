using System.Diagnostics;
using System.Text.RegularExpressions;
using BpfJit.Cli.Output;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

/// <summary><c>run --repeat N</c> (BPF_PROG_TEST_RUN's repeat and duration) and <c>run --dump-maps</c> (bpftool map dump).</summary>
public partial class RunRepeatAndMapDumpTests
{
    static readonly string HashCounter = Repo("tests", "programs", "hash_counter.o");

    [GeneratedRegex(@"^duration \(average\): \d+ns over 7 runs$", RegexOptions.Multiline)]
    private static partial Regex DurationLine();

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void RepeatRunsTheProgramNTimesAndTheMapShowsIt(string engine)
    {
        var (code, output, err) = Run("run", HashCounter, "--proto", "tcp", "--from", "10.0.0.1:5555", "--to", "1.2.3.1:80",
            "--engine", engine, "--repeat", "7", "--dump-maps");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(DurationLine().IsMatch(output), Is.True, output);
        // hash_counter counts per (protocol, local port): TCP is 6, port 80 is 0x50; seven runs, seven counts.
        Assert.That(output, Does.Contain("map counters (Hash, id ").And.Contain(
            "key: 06 00 00 00 50 00 00 00  value: 07 00 00 00 00 00 00 00\nFound 1 element\n".ReplaceLineEndings()));
    }

    [Test]
    public void WithoutRepeatTheProgramRunsOnce()
    {
        var (code, output, err) = Run("run", HashCounter, "--proto", "udp", "--from", "10.0.0.1:5555", "--to", "1.2.3.1:53", "--dump-maps");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("key: 11 00 00 00 35 00 00 00  value: 01 00 00 00 00 00 00 00"));
        Assert.That(output, Does.Not.Contain("duration"));
    }

    [Test]
    public void JsonCarriesTheDurationAndTheMaps()
    {
        var json = Json("run", HashCounter, "--proto", "tcp", "--from", "10.0.0.1:5555", "--to", "1.2.3.1:443", "--repeat", "3", "--dump-maps");
        Assert.That(json.GetProperty("repeat").GetInt32(), Is.EqualTo(3));
        Assert.That(json.GetProperty("durationNs").GetUInt64(), Is.GreaterThan(0UL));
        var map = json.GetProperty("maps")[0];
        Assert.That(map.GetProperty("name").GetString(), Is.EqualTo("counters"));
        var element = map.GetProperty("elements")[0];
        Assert.That(element.GetProperty("key").EnumerateArray().Select(b => b.GetString()), Is.EqualTo(new[] { "0x06", "0x00", "0x00", "0x00", "0xbb", "0x01", "0x00", "0x00" }));
        Assert.That(element.GetProperty("value")[0].GetString(), Is.EqualTo("0x03"));
    }

    [Test]
    public void WithoutTheOptionsTheJsonHasNeither()
    {
        var json = Json("run", HashCounter, "--proto", "tcp", "--from", "10.0.0.1:5555", "--to", "1.2.3.1:443");
        Assert.That(json.TryGetProperty("durationNs", out _) || json.TryGetProperty("maps", out _), Is.False);
    }

    [TestCase("0")]
    [TestCase("-1")]
    [TestCase("many")]
    public void RepeatMustBePositive(string n) =>
        AssertBadInput(Run("run", HashCounter, "--proto", "tcp", "--from", "10.0.0.1:5555", "--to", "1.2.3.1:80", "--repeat", n),
            "--repeat must be a positive number");

    /// <summary>The same elements print as bpftool prints them from a kernel map: single-line, broken and per-CPU layouts.</summary>
    [TestCase("hash", MapType.Hash, 4, 8)]
    [TestCase("array", MapType.Array, 4, 20)]
    [TestCase("hash", MapType.Hash, 20, 4)]
    [TestCase("percpu_array", MapType.PerCpuArray, 4, 4)]
    [TestCase("percpu_hash", MapType.PerCpuHash, 4, 24)]
    [Category(KernelOracle.Category)]
    public void TheTextIsBpftoolsMapDump(string kernelType, MapType type, int keySize, int valueSize)
    {
        KernelBpf.RequireAvailable();
        if (!File.Exists("/usr/sbin/bpftool") && !File.Exists("/usr/bin/bpftool")) Assert.Ignore("bpftool is not installed (apt-get install bpftool)");
        string pin = $"/sys/fs/bpf/bpfjit-dump-{Environment.ProcessId}-{Guid.NewGuid():n}";
        using var map = MapFactory.Create(new MapDefinition("m", type, keySize, valueSize, 2));
        // An array's key is an index below max_entries (1); a hash's any bytes.
        var key = type == MapType.Array ? [1, 0, 0, 0] : Enumerable.Range(1, keySize).Select(i => (byte)i).ToArray();
        var value = Enumerable.Range(0x40, valueSize).Select(i => (byte)i).ToArray();
        try
        {
            Bpftool($"map create {pin} type {kernelType} key {keySize} value {valueSize} entries 2 name m");
            if (type != MapType.PerCpuArray)
            {
                // An array has every key already; a hash gets one element.
                // bpftool sets a per-CPU element to the one value on every CPU; the map takes every CPU's slot.
                var one = value.AsSpan(0, valueSize).ToArray();
                Bpftool($"map update pinned {pin} key {Bytes(key)} value {Bytes(one)}");
                Assert.That(map.Update(key, type == MapType.PerCpuHash ? PerCpuValue(one) : one), Is.Zero);
            }
            var ours = new StringWriter();
            MapDump.WriteText(map, ours);
            string theirs = Bpftool($"map dump pinned {pin}");
            Assert.That(ours.ToString().ReplaceLineEndings("\n"), Is.EqualTo(theirs));
        }
        finally
        {
            File.Delete(pin);
        }
    }

    // The per-CPU form of a value: one 8-byte-aligned slot per possible CPU.
    static byte[] PerCpuValue(byte[] value)
    {
        int slot = (value.Length + 7) & ~7;
        var all = new byte[slot * Cpu.Count];
        for (int cpu = 0; cpu < Cpu.Count; cpu++) value.CopyTo(all.AsSpan(cpu * slot));
        return all;
    }

    static string Bytes(ReadOnlySpan<byte> bytes) => string.Join(' ', bytes.ToArray().Select(b => b.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    static string Bpftool(string arguments)
    {
        using var p = Process.Start(new ProcessStartInfo("bpftool", arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string output = p.StandardOutput.ReadToEnd();
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) Assert.Ignore($"bpftool {arguments} failed ({p.ExitCode}): {error.Trim()}");
        return output;
    }
}

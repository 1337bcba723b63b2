using System.Text.Json;

namespace BpfJit.Tests.Cli;

/// <summary>
/// One error shape for bad input on every verb that reads a file: exit 2, exactly one stderr line
/// <c>bpfjit VERB: FILE: what</c> (no stack trace), and with <c>--json</c> also <c>{"error": ..., "exit": 2}</c>
/// on stdout. The inputs: a missing file, a directory, an empty file, <c>/dev/zero</c> (endless), a 3 GB
/// sparse file, random bytes, and a text file with no instruction. None may abort the process.
/// </summary>
[NonParallelizable]
public class BadInputShapeTests
{
    static string s_dir = "";

    [OneTimeSetUp]
    public void MakeInputs()
    {
        s_dir = Path.Combine(Path.GetTempPath(), $"bpfjit-badinput-{Guid.NewGuid():n}");
        Directory.CreateDirectory(Path.Combine(s_dir, "a-directory"));
        File.WriteAllBytes(Path.Combine(s_dir, "empty.o"), []);
        var random = new Random(20261207);
        byte[] noise = new byte[1001];
        random.NextBytes(noise);
        noise[0] = 0xff; // never the ELF magic, never valid UTF-8
        File.WriteAllBytes(Path.Combine(s_dir, "noise.bin"), noise);
        File.WriteAllText(Path.Combine(s_dir, "comments.asm"), "# only a comment\n\n");
        using (var sparse = new FileStream(Path.Combine(s_dir, "sparse.o"), FileMode.Create))
            sparse.SetLength(3L << 30); // 3 GB that take no disk space
    }

    [OneTimeTearDown]
    public void RemoveInputs()
    {
        try { Directory.Delete(s_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    static readonly string[] s_inputs = ["missing.o", "a-directory", "empty.o", "/dev/zero", "sparse.o", "noise.bin", "comments.asm"];

    // Each verb with FILE where its input goes.
    static readonly Dictionary<string, string[]> s_verbs = new()
    {
        ["verify"] = ["verify", "FILE"],
        ["cfg"] = ["cfg", "FILE"],
        ["run"] = ["run", "FILE", "--proto", "tcp", "--from", "10.0.0.1:1", "--to", "10.0.0.2:2"],
        ["bench"] = ["bench", "FILE", "--seconds", "0.01"],
        ["dump"] = ["dump", "FILE", "--il"],
        ["inspect"] = ["inspect", "FILE"],
        ["disasm"] = ["disasm", "FILE"],
        ["scenario"] = ["scenario", "FILE"],
        ["replay"] = ["replay", "FILE", "--scenario", "SCENARIO"],
    };

    public static IEnumerable<TestCaseData> Cases() =>
        from verb in s_verbs.Keys
        from input in s_inputs
        where !(input == "/dev/zero" && !OperatingSystem.IsLinux())
        select new TestCaseData(verb, input).SetName($"{verb} {input}");

    static string PathOf(string input) => input.StartsWith('/') ? input : Path.Combine(s_dir, input);

    [TestCaseSource(nameof(Cases))]
    public void OneLineExitTwo(string verb, string input)
    {
        string file = PathOf(input);
        string[] args = s_verbs[verb].Select(a => a == "FILE" ? file : a == "SCENARIO" ? CliHarness.Repo("examples", "captures", "replay.json") : a).ToArray();
        var r = CliHarness.Run(args);
        CliHarness.AssertBadInput(r, $"bpfjit {verb}: ", file);
        Assert.That(r.Err, Does.StartWith($"bpfjit {verb}: {file}: "), "the line names the verb, then the file");
        Assert.That(r.Out, Is.Empty, "nothing on stdout without --json");

        var j = CliHarness.Run([.. args, "--json"]);
        Assert.That(j.Code, Is.EqualTo(2), j.Err);
        using var doc = JsonDocument.Parse(j.Out);
        Assert.That(doc.RootElement.GetProperty("exit").GetInt32(), Is.EqualTo(2));
        Assert.That(doc.RootElement.GetProperty("error").GetString(), Does.StartWith($"{file}: "));
    }

    [Test]
    public void WhatEachInputIsCalled()
    {
        Assert.Multiple(() =>
        {
            Assert.That(CliHarness.Run("verify", PathOf("missing.o")).Err, Does.Contain("missing.o: no such file"));
            Assert.That(CliHarness.Run("verify", PathOf("a-directory")).Err, Does.Contain("a-directory: is a directory"));
            Assert.That(CliHarness.Run("verify", PathOf("empty.o")).Err, Does.Contain("empty.o: empty file"));
            Assert.That(CliHarness.Run("inspect", PathOf("sparse.o")).Err, Does.Contain("more than the 268,435,456"));
            Assert.That(CliHarness.Run("verify", PathOf("noise.bin")).Err, Does.Contain("not a whole number of 8-byte instruction slots"));
            Assert.That(CliHarness.Run("verify", PathOf("comments.asm")).Err, Does.Contain("no instructions"));
            Assert.That(CliHarness.Run("inspect", PathOf("noise.bin")).Err, Does.Contain("not an ELF object"));
        });
        if (OperatingSystem.IsLinux())
            Assert.That(CliHarness.Run("verify", "/dev/zero").Err, Does.Contain("more than the").And.Contain("does not end"));
    }

    [Test]
    public void ConformanceWithNoTestFilesIsBadInput()
    {
        var r = CliHarness.Run("conformance", Path.Combine(s_dir, "a-directory"));
        CliHarness.AssertBadInput(r, "bpfjit conformance: ", "no .data test files");
    }

    [Test]
    public void TheKindIsToldByContentNotByName()
    {
        // Assembly in a file named .bin, and bytecode in a file named .asm, both verify.
        string asm = Path.Combine(s_dir, "assembly.bin");
        File.Copy(CliHarness.Repo("examples", "prog.asm"), asm, overwrite: true);
        string bin = Path.Combine(s_dir, "bytecode.asm");
        File.Copy(CliHarness.Repo("examples", "prog.bin"), bin, overwrite: true);
        Assert.That(CliHarness.Run("verify", asm).Code, Is.EqualTo(0), CliHarness.Run("verify", asm).Err);
        Assert.That(CliHarness.Run("verify", bin).Code, Is.EqualTo(0), CliHarness.Run("verify", bin).Err);
    }
}

/// <summary>A capture cut short: the packets before the damage are replayed and shown, then the error, exit 2.</summary>
public class DamagedCaptureTests
{
    [Test]
    public void TheGoodPacketsAreReplayedThenTheErrorIsReported()
    {
        byte[] whole = File.ReadAllBytes(CliHarness.Repo("examples", "captures", "dispatcher.pcapng"));
        string cut = CliHarness.Temp(".pcapng", whole[..^10]);
        try
        {
            var r = CliHarness.Run("replay", cut, "--scenario", CliHarness.Repo("examples", "captures", "replay.json"));
            CliHarness.AssertBadInput(r, $"bpfjit replay: {cut}: ", "the packets before it are shown");
            Assert.That(r.Out, Does.Contain("   11  ").And.Not.Contain("   12  "), "packets 1-11 replayed, the cut 12th not");
            Assert.That(r.Out, Does.Contain("total"));

            var j = CliHarness.Run("replay", cut, "--scenario", CliHarness.Repo("examples", "captures", "replay.json"), "--json");
            Assert.That(j.Code, Is.EqualTo(2));
            using var doc = JsonDocument.Parse(j.Out);
            Assert.That(doc.RootElement.GetProperty("packets").GetArrayLength(), Is.EqualTo(11));
            Assert.That(doc.RootElement.GetProperty("exit").GetInt32(), Is.EqualTo(2));
            Assert.That(doc.RootElement.GetProperty("error").GetString(), Does.StartWith(cut));
        }
        finally
        {
            File.Delete(cut);
        }
    }
}

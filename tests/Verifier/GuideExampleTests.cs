using System.Text.RegularExpressions;
using BpfJit.Frontend.Elf;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// The examples of docs/verifier-guide.md: in each docs/verifier-guide/NAME.c the program NAME is
/// rejected with the message its <c>expect:</c> line names, and NAME_fixed (the guide's advice applied)
/// is accepted. The committed objects are the ones the guide's logs were taken from.
/// </summary>
public class GuideExampleTests
{
    static string Folder => Path.Combine(Paths.RepoRoot, "docs", "verifier-guide");

    public static IEnumerable<string> Names() =>
        Directory.GetFiles(Path.Combine(Paths.RepoRoot, "docs", "verifier-guide"), "*.c").Select(Path.GetFileNameWithoutExtension).Order()!;

    static VerifierResult Verify(string name, string program)
    {
        var collection = ObjectFile.Load(Path.Combine(Folder, name + ".o"));
        var spec = collection.Programs.Single(p => p.Name == program);
        return ObjectVerification.Verify(collection, spec, BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable());
    }

    [TestCaseSource(nameof(Names))]
    public void TheExampleIsRejectedWithItsMessage(string name)
    {
        string source = File.ReadAllText(Path.Combine(Folder, name + ".c"));
        var expect = Regex.Match(source, @"expect: (.*?) \*/");
        Assert.That(expect.Success, $"{name}.c has no 'expect: MESSAGE */' line");
        var result = Verify(name, name);
        Assert.That(result.Accepted, Is.False, $"{name} was accepted");
        Assert.That(result.Log, Does.Contain(expect.Groups[1].Value));
    }

    [TestCaseSource(nameof(Names))]
    public void TheFixedProgramIsAccepted(string name)
    {
        var result = Verify(name, name + "_fixed");
        Assert.That(result.Accepted, Is.True, result.Log);
    }

    [Test]
    public void EveryExampleIsInTheGuide()
    {
        string guide = File.ReadAllText(Path.Combine(Paths.RepoRoot, "docs", "verifier-guide.md"));
        foreach (string name in Names())
            Assert.That(guide, Does.Contain($"verifier-guide/{name}.c"), $"docs/verifier-guide.md does not show {name}.c");
    }
}

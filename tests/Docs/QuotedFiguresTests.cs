using System.Text.Json;
using System.Text.RegularExpressions;
using BpfJit.Tests.Cli;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Docs;

/// <summary>
/// The deterministic figures that docs/cli.md and the demo/verify help quote for the bundled dispatcher
/// (instructions the verifier processed, IL instructions emitted, lines of the IL listing) are the tool's
/// current ones: a change to the verifier or the emitter that moves them fails here until the quotes follow.
/// Timings are not checked (they are labelled as one machine's run).
/// </summary>
public partial class QuotedFiguresTests
{
    [GeneratedRegex(@"""insnsProcessed"": (\d+)|processed (\d+) insns|accepted: (\d+) instructions processed")]
    private static partial Regex Processed();

    [GeneratedRegex(@"""ilInstructions"": (\d+)|slots -> (\d+) IL instructions")]
    private static partial Regex IlInstructions();

    [GeneratedRegex(@"\(30 of (\d+) lines")]
    private static partial Regex IlLines();

    static IEnumerable<(string Where, string Text)> Quoting()
    {
        yield return ("docs/cli.md", File.ReadAllText(Path.Combine(Paths.RepoRoot, "docs", "cli.md")));
        yield return ("bpfjit demo --help", CliHarness.Run("demo", "--help").Out);
        yield return ("bpfjit verify --help", CliHarness.Run("verify", "--help").Out);
    }

    static IEnumerable<int> Figures(Regex regex, string text) =>
        regex.Matches(text).Select(m => int.Parse(m.Groups.Cast<Group>().Skip(1).First(g => g.Success).Value));

    [Test]
    public void TheDispatchersFiguresAreCurrent()
    {
        JsonElement demo = CliHarness.Json("demo", "--seconds", "0.01");
        int processed = demo.GetProperty("verify").GetProperty("insnsProcessed").GetInt32();
        int il = demo.GetProperty("ilInstructions").GetInt32();
        var (code, text, err) = CliHarness.Run("demo", "--seconds", "0.01");
        Assert.That(code, Is.EqualTo(0), err);
        int lines = Figures(IlLines(), text).Single();

        int quoted = 0;
        foreach (var (where, quote) in Quoting())
        {
            foreach (int n in Figures(Processed(), quote)) { quoted++; Assert.That(n, Is.EqualTo(processed), $"{where}: instructions processed"); }
            foreach (int n in Figures(IlInstructions(), quote)) { quoted++; Assert.That(n, Is.EqualTo(il), $"{where}: IL instructions"); }
            foreach (int n in Figures(IlLines(), quote)) { quoted++; Assert.That(n, Is.EqualTo(lines), $"{where}: lines of the IL listing"); }
        }
        Assert.That(quoted, Is.GreaterThanOrEqualTo(8), "the quotes this test guards are still there");
    }
}

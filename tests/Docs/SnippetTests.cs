using System.Text.RegularExpressions;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Docs;

/// <summary>
/// Code shown in the documentation is code that compiles: a fenced block preceded by
/// <c>&lt;!-- snippet: PATH#REGION --&gt;</c> must equal the lines between <c>// [REGION]</c> and
/// <c>// [/REGION]</c> in PATH (relative to the repository root), with their common indentation removed.
/// The example projects and the tests build those files.
/// </summary>
public partial class SnippetTests
{
    [GeneratedRegex(@"<!-- snippet: (?<path>[^#\s]+)#(?<region>[\w-]+) -->\r?\n```\w*\r?\n(?<code>.*?)```", RegexOptions.Singleline)]
    private static partial Regex Snippet();

    static readonly string[] s_documents = ["docs/embedding.md", "examples/UdpEcho/README.md"];

    public static IEnumerable<TestCaseData> Snippets()
    {
        foreach (string doc in s_documents)
        {
            string text = File.ReadAllText(Path.Combine(Paths.RepoRoot, doc)).ReplaceLineEndings("\n");
            foreach (Match m in Snippet().Matches(text))
                yield return new TestCaseData(doc, m.Groups["path"].Value, m.Groups["region"].Value, m.Groups["code"].Value)
                    .SetName($"{doc} shows {m.Groups["path"].Value}#{m.Groups["region"].Value}");
        }
    }

    /// <summary>The region's lines, dedented, each ending in a newline.</summary>
    public static string Region(string path, string region)
    {
        var lines = File.ReadAllLines(Path.Combine(Paths.RepoRoot, path));
        int start = Array.FindIndex(lines, l => l.Trim() == $"// [{region}]");
        int end = Array.FindIndex(lines, l => l.Trim() == $"// [/{region}]");
        if (start < 0 || end < start) throw new InvalidOperationException($"{path}: no region '// [{region}]' ... '// [/{region}]'");
        var body = lines[(start + 1)..end];
        int indent = body.Where(l => l.Trim().Length > 0).Select(l => l.Length - l.TrimStart().Length).DefaultIfEmpty(0).Min();
        return string.Concat(body.Select(l => (l.Length >= indent ? l[indent..] : l.TrimStart()) + "\n"));
    }

    [TestCaseSource(nameof(Snippets))]
    public void TheSnippetIsTheCode(string document, string path, string region, string code)
    {
        Assert.That(code, Is.EqualTo(Region(path, region)), $"{document}: the snippet of {path}#{region} is out of date");
    }

    [Test]
    public void EveryDocumentHasSnippets()
    {
        foreach (string doc in s_documents)
            Assert.That(Snippets().Count(s => (string)s.Arguments[0]! == doc), Is.GreaterThan(0), $"{doc} shows no snippet");
    }
}

using System.Text.RegularExpressions;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Docs;

/// <summary>
/// Relative links in the README, docs/*.md and the examples' READMEs point at files that exist, and a
/// <c>#fragment</c> into a Markdown file names one of its headings (GitHub's anchor rule).
/// </summary>
public partial class LinkTests
{
    [GeneratedRegex(@"\]\((?<target>[^)\s]+)\)")]
    private static partial Regex Link();

    [GeneratedRegex(@"^#{1,6}\s+(?<title>.+?)\s*$", RegexOptions.Multiline)]
    private static partial Regex Heading();

    public static IEnumerable<string> Documents()
    {
        string root = Paths.RepoRoot;
        yield return "README.md";
        foreach (var f in Directory.GetFiles(Path.Combine(root, "docs"), "*.md").Order()) yield return Path.GetRelativePath(root, f);
        foreach (var f in Directory.GetFiles(Path.Combine(root, "examples"), "README.md", SearchOption.AllDirectories).Order())
            yield return Path.GetRelativePath(root, f);
    }

    /// <summary>GitHub's heading anchor: lower case, punctuation other than '-' and '_' dropped, spaces to '-'.</summary>
    public static string Anchor(string heading)
    {
        var chars = heading.ToLowerInvariant().Where(c => char.IsLetterOrDigit(c) || c is ' ' or '-' or '_');
        return new string(chars.ToArray()).Replace(' ', '-');
    }

    [TestCaseSource(nameof(Documents))]
    public void RelativeLinksResolve(string document)
    {
        string path = Path.Combine(Paths.RepoRoot, document);
        string text = File.ReadAllText(path);
        // Code blocks and inline code are not links.
        text = Regex.Replace(text, "```.*?```", "", RegexOptions.Singleline);
        text = Regex.Replace(text, "`[^`\n]*`", "");
        var broken = new List<string>();
        foreach (Match m in Link().Matches(text))
        {
            string target = m.Groups["target"].Value;
            if (target.Contains("://", StringComparison.Ordinal) || target.StartsWith("mailto:", StringComparison.Ordinal)) continue;
            string file = target, fragment = "";
            int hash = target.IndexOf('#');
            if (hash >= 0) (file, fragment) = (target[..hash], target[(hash + 1)..]);
            string full = file.Length == 0 ? path : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, file));
            if (!File.Exists(full) && !Directory.Exists(full)) { broken.Add($"{target}: no such file"); continue; }
            if (fragment.Length > 0 && full.EndsWith(".md", StringComparison.Ordinal))
            {
                var anchors = Heading().Matches(File.ReadAllText(full)).Select(h => Anchor(h.Groups["title"].Value)).ToHashSet();
                if (!anchors.Contains(fragment)) broken.Add($"{target}: no heading with anchor '{fragment}'");
            }
        }
        Assert.That(broken, Is.Empty, $"{document}: broken links");
    }
}

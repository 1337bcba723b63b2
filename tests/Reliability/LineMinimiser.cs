namespace BpfJit.Tests.Reliability;

/// <summary>
/// Shrinks a failing program at the source level (delta debugging over runs of lines), so the result
/// keeps its labels and map and callback names and can be written as a corpus case. Label lines are never
/// removed; a candidate that no longer assembles does not count as failing.
/// </summary>
public static class LineMinimiser
{
    /// <summary>The smallest source found for which <paramref name="stillFails"/> holds on its assembly (at most <paramref name="budget"/> tries).</summary>
    public static string Minimise<TCode>(string source, Func<TCode, bool> stillFails, Func<string, TCode> assemble, int budget = 600)
    {
        var current = source.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
        for (int chunk = Math.Max(1, current.Count / 2); chunk >= 1 && budget > 0; chunk /= 2)
        {
            bool shrunk = true;
            while (shrunk && budget > 0)
            {
                shrunk = false;
                for (int start = 0; start < current.Count && budget > 0; start += chunk)
                {
                    var removable = Enumerable.Range(start, Math.Min(chunk, current.Count - start)).Where(i => !IsLabel(current[i])).ToList();
                    if (removable.Count == 0) continue;
                    var candidate = current.Where((_, i) => !removable.Contains(i)).ToList();
                    budget--;
                    bool fails;
                    try { fails = stillFails(assemble(string.Join("\n", candidate) + "\n")); }
                    catch (Exception e) when (e is BpfJit.Frontend.BpfException or FormatException) { fails = false; }
                    if (!fails) continue;
                    current = candidate;
                    shrunk = true;
                }
            }
        }
        // Labels nothing jumps to any more are noise in a corpus case.
        var text = string.Join("\n", current);
        current = [.. current.Where(l => !IsLabel(l) || System.Text.RegularExpressions.Regex.IsMatch(text, $@"[ ,]{System.Text.RegularExpressions.Regex.Escape(l.TrimEnd(':'))}\s*$", System.Text.RegularExpressions.RegexOptions.Multiline))];
        return string.Join("\n", current) + "\n";
    }

    static bool IsLabel(string line) => line.TrimEnd().EndsWith(':');
}

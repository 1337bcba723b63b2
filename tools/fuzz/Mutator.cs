namespace BpfJit.Fuzz;

/// <summary>
/// A small AFL-style mutator for the in-process loop (no coverage feedback): each input is a corpus
/// entry with 1–8 stacked mutations — bit flips, interesting bytes and little-endian integers, chunk
/// deletion, duplication and insertion, truncation, and splicing with another entry.
/// </summary>
public sealed class Mutator(IReadOnlyList<byte[]> corpus, int seed)
{
    static readonly long[] s_interesting = [0, 1, -1, 2, 7, 8, 16, 64, 127, 128, 255, 256, 512, 4096, 32767, 65535, int.MaxValue, int.MinValue, uint.MaxValue, long.MaxValue, long.MinValue];

    readonly Random _rng = new(seed);

    /// <summary>The next input.</summary>
    public byte[] Next()
    {
        var data = new List<byte>(corpus.Count == 0 ? [] : corpus[_rng.Next(corpus.Count)]);
        int rounds = 1 << _rng.Next(4);
        for (int i = 0; i < rounds; i++) Mutate(data);
        return [.. data];
    }

    void Mutate(List<byte> d)
    {
        int n = d.Count;
        switch (_rng.Next(n == 0 ? 1 : 10))
        {
            case 0:
                d.InsertRange(n == 0 ? 0 : _rng.Next(n + 1), RandomBytes(_rng.Next(1, 9)));
                break;
            case 1:
                d[_rng.Next(n)] ^= (byte)(1 << _rng.Next(8));
                break;
            case 2:
                d[_rng.Next(n)] = (byte)s_interesting[_rng.Next(s_interesting.Length)];
                break;
            case 3:
                {
                    int width = 1 << _rng.Next(1, 4);
                    if (n < width) break;
                    int at = _rng.Next(n - width + 1);
                    if (_rng.Next(2) == 0) at &= ~(width - 1);
                    long v = s_interesting[_rng.Next(s_interesting.Length)];
                    for (int b = 0; b < width; b++) d[at + b] = (byte)(v >> (8 * b));
                    break;
                }
            case 4:
                {
                    int at = _rng.Next(n);
                    d.RemoveRange(at, Math.Min(n - at, _rng.Next(1, 65)));
                    break;
                }
            case 5:
                {
                    int at = _rng.Next(n), len = Math.Min(n - at, _rng.Next(1, 65));
                    d.InsertRange(_rng.Next(n + 1), d.GetRange(at, len));
                    break;
                }
            case 6:
                {
                    int at = _rng.Next(n);
                    d.RemoveRange(at, n - at);
                    break;
                }
            case 7:
                {
                    // Splice: this entry's head, another's tail.
                    var other = corpus[_rng.Next(corpus.Count)];
                    if (other.Length == 0) break;
                    int cut = _rng.Next(n), from = _rng.Next(other.Length);
                    d.RemoveRange(cut, n - cut);
                    d.AddRange(other.AsSpan(from).ToArray());
                    break;
                }
            case 8:
                {
                    int at = _rng.Next(n);
                    d[at] = (byte)(d[at] + _rng.Next(-35, 36));
                    break;
                }
            default:
                d[_rng.Next(n)] = (byte)_rng.Next(256);
                break;
        }
    }

    byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        _rng.NextBytes(b);
        return b;
    }
}

/// <summary>What an in-process run of one harness saw.</summary>
public sealed record MutationReport(string Harness, int Executions, int Rejected, int Crashes, TimeSpan Elapsed, IReadOnlyList<(byte[] Input, Exception Error)> CrashInputs)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{Harness}: {Executions} executions, {Executions - Rejected - Crashes} accepted, {Rejected} typed rejections, {Crashes} crashes, {Executions / Math.Max(Elapsed.TotalSeconds, 0.001):0} exec/s";

    /// <summary>Runs <paramref name="executions"/> mutated inputs from <paramref name="seed"/> through <paramref name="harness"/>.</summary>
    public static MutationReport Run(Harness harness, int executions, int seed)
    {
        var corpus = Harnesses.Corpus(harness.CorpusFolder).Select(c => c.Bytes).ToList();
        var mutator = new Mutator(corpus, seed);
        var crashes = new List<(byte[], Exception)>();
        int rejected = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < executions; i++)
        {
            var input = mutator.Next();
            try { harness.Run(input); }
            catch (Exception e) when (Harnesses.IsExpected(e)) { rejected++; }
            catch (Exception e) { crashes.Add((input, e)); }
        }
        return new MutationReport(harness.Name, executions, rejected, crashes.Count, clock.Elapsed, crashes);
    }
}

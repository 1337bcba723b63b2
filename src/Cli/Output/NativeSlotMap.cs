using System.Globalization;
using System.Text;
using BpfJit.Frontend;
using BpfJit.IlEmitter;

namespace BpfJit.Cli.Output;

/// <summary>
/// Carries the runtime's IL-to-native map over to a native listing, as <c>bpftool prog dump jited linum</c> puts
/// source lines over the kernel JIT's code: each native instruction is given the eBPF slots whose IL the map says
/// it comes from. Independent of the architecture: it reads offsets, never instructions.
/// </summary>
/// <remarks>
/// An entry of the map says that the native code from its native offset up to the next entry's came from the IL
/// at its IL offset; RyuJIT's optimised code reports an IL offset where the IL stack is empty and at calls, so one
/// entry may stand for the IL of several slots: those from its IL offset up to the next IL offset the map names.
/// A slot that emitted no IL (dead code, the second half of <c>lddw</c>) owns no IL and is never listed.
/// </remarks>
public static class NativeSlotMap
{
    /// <summary>The map's IL offset of native code that comes from no IL (ICorDebugInfo::NO_MAPPING).</summary>
    public const int NoMapping = -1;

    /// <summary>The map's IL offset of the method's prolog (ICorDebugInfo::PROLOG).</summary>
    public const int Prolog = -2;

    /// <summary>The map's IL offset of an epilog (ICorDebugInfo::EPILOG).</summary>
    public const int Epilog = -3;

    /// <summary>What one native instruction comes from.</summary>
    /// <param name="Offset">The instruction's offset from the method's start.</param>
    /// <param name="Slots">The eBPF slots (<see cref="NativeTwin.PrologueSlot"/> and <see cref="NativeTwin.FrameReturnSlot"/>
    /// for the emitter's blocks of no slot); empty for RyuJIT's own code.</param>
    /// <param name="Part">null, or <c>prolog</c>, <c>epilog</c> (RyuJIT's; with slots too when the map puts an exit's IL
    /// at the epilog's offset) or <c>unmapped</c> (no slots: no IL offset, or before the map's first entry).</param>
    public sealed record Origin(int Offset, IReadOnlyList<int> Slots, string? Part)
    {
        /// <summary>True when <paramref name="other"/> comes from the same slots or part (one header covers both).</summary>
        public bool SameSource(Origin other) => other.Part == Part && other.Slots.SequenceEqual(Slots);
    }

    /// <summary>
    /// The origin of each instruction at <paramref name="offsets"/> (ascending), from the emitter's
    /// <paramref name="markers"/> (where each slot's IL starts, in emission order) and the runtime's
    /// <paramref name="map"/> (IL offset, native offset; in the order sent).
    /// </summary>
    public static List<Origin> Attribute(IReadOnlyList<int> offsets, IReadOnlyList<(int Slot, int IlOffset)> markers, IReadOnlyList<(int IlOffset, int NativeOffset)> map)
    {
        ArgumentNullException.ThrowIfNull(offsets);
        ArgumentNullException.ThrowIfNull(markers);
        ArgumentNullException.ThrowIfNull(map);
        var mappedIl = map.Where(e => e.IlOffset >= 0).Select(e => e.IlOffset).Distinct().Order().ToList();
        // Entries that share a native offset: all but one cover no code (IL RyuJIT folded into what follows), and the
        // code there comes from all of their IL, as bpftool lists every source line of one address.
        var ranges = map.GroupBy(e => e.NativeOffset).OrderBy(g => g.Key).Select(g =>
        {
            var il = g.Select(e => e.IlOffset).ToList();
            if (!il.Any(x => x >= 0))
                return (Native: g.Key, Slots: (IReadOnlyList<int>)[], Part: (string?)(il[^1] switch { Prolog => "prolog", Epilog => "epilog", _ => "unmapped" }));
            var slots = il.Where(x => x >= 0).SelectMany(x => SlotsOf(x, NextMapped(mappedIl, x), markers)).Distinct().ToList();
            // An exit's IL and RyuJIT's epilog at one offset: the code is both.
            string? frame = il.Contains(Epilog) ? "epilog" : il.Contains(Prolog) ? "prolog" : null;
            return (Native: g.Key, Slots: (IReadOnlyList<int>)slots, Part: slots.Count == 0 ? frame ?? "unmapped" : frame);
        }).ToList();
        var result = new List<Origin>(offsets.Count);
        int r = -1;
        foreach (int offset in offsets)
        {
            while (r + 1 < ranges.Count && ranges[r + 1].Native <= offset) r++;
            result.Add(r < 0 ? new Origin(offset, [], "unmapped") : new Origin(offset, ranges[r].Slots, ranges[r].Part));
        }
        return result;
    }

    static int NextMapped(List<int> mappedIl, int il)
    {
        int i = mappedIl.BinarySearch(il);
        i = i < 0 ? ~i : i + 1;
        return i < mappedIl.Count ? mappedIl[i] : int.MaxValue;
    }

    /// <summary>The slots owning IL in [<paramref name="from"/>, <paramref name="to"/>): a marker owns the IL up to the next marker's offset.</summary>
    static List<int> SlotsOf(int from, int to, IReadOnlyList<(int Slot, int IlOffset)> markers)
    {
        var slots = new List<int>();
        for (int i = 0; i < markers.Count; i++)
        {
            int start = markers[i].IlOffset, end = i + 1 < markers.Count ? markers[i + 1].IlOffset : int.MaxValue;
            if (end > start && start < to && end > from && !slots.Contains(markers[i].Slot)) slots.Add(markers[i].Slot);
        }
        return slots;
    }

    /// <summary>
    /// <paramref name="listing"/> (one instruction a line, each starting with its hex offset and a colon, as
    /// <see cref="NativeListing.Listing"/> writes it) with a header before each group of instructions from the
    /// same slots: <c>; 12: r1 = *(u32 *)(r6 + 4)</c>, <c>; prolog (RyuJIT's frame setup)</c>; a slot named by the group
    /// just before is not named again.
    /// </summary>
    public static string Interleave(string listing, IReadOnlyList<Origin> origins, IReadOnlyList<Instruction> program)
    {
        ArgumentNullException.ThrowIfNull(listing);
        ArgumentNullException.ThrowIfNull(origins);
        var byOffset = origins.ToDictionary(o => o.Offset);
        var sb = new StringBuilder();
        Origin? current = null;
        foreach (var line in listing.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (byOffset.TryGetValue(Offset(line), out var origin) && (current == null || !origin.SameSource(current)))
            {
                // One slot's IL can run into the next group (a map entry in the middle of its IL): its line is not repeated.
                var fresh = current == null || current.Part != null ? origin : origin with { Slots = [.. origin.Slots.Except(current.Slots)] };
                foreach (var header in Headers(fresh, program)) sb.AppendLine(header);
                current = origin;
            }
            sb.AppendLine(line.TrimEnd('\r'));
        }
        return sb.ToString();
    }

    /// <summary>The offset a listing line starts with (<c>001c: ...</c>).</summary>
    public static int Offset(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        return int.Parse(line.AsSpan(0, line.IndexOf(':', StringComparison.Ordinal)), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }

    /// <summary>The header lines of <paramref name="origin"/>'s group.</summary>
    public static IEnumerable<string> Headers(Origin origin, IReadOnlyList<Instruction> program)
    {
        ArgumentNullException.ThrowIfNull(origin);
        foreach (int slot in origin.Slots)
            yield return slot switch
            {
                NativeTwin.PrologueSlot => "; prologue",
                NativeTwin.FrameReturnSlot => "; return from a bpf-to-bpf call (shared by every exit)",
                _ => $"; {slot}: {Disassembler.Format(program, slot)}",
            };
        if (origin.Part != null)
            yield return origin.Part switch
            {
                "prolog" => "; prolog (RyuJIT's frame setup)",
                "epilog" => "; epilog (RyuJIT's frame teardown)",
                _ => "; no IL offset (code RyuJIT did not attribute)",
            };
    }
}

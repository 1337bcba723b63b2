using System.Runtime.InteropServices;
using BpfJit.IlEmitter;

namespace BpfJit.Cli.Output;

/// <summary>
/// <c>dump --native</c>'s whole answer: the running code (the DynamicMethod's, <see cref="NativeListing.Read"/>) and,
/// where the runtime's map could be had and carried over, which eBPF slots each instruction comes from.
/// </summary>
/// <param name="Address">The running code's address in this process.</param>
/// <param name="Code">The running code.</param>
/// <param name="Origins">Per instruction of <paramref name="Code"/>, its slots; null when not interleaved.</param>
/// <param name="Note">Why the listing is not interleaved, or how the map was carried over.</param>
public sealed record NativeDump(nint Address, byte[] Code, IReadOnlyList<NativeSlotMap.Origin>? Origins, string Note)
{
    /// <summary>
    /// Reads the running code, then compiles the program's <see cref="NativeTwin"/> under an EventPipe session
    /// (<see cref="JitMapSession"/>) and, when the twin's code has the running code's layout (the same instructions
    /// at the same offsets), carries the twin's IL-to-native map over to the running code.
    /// </summary>
    public static NativeDump Read(CompiledProgram compiled)
    {
        ArgumentNullException.ThrowIfNull(compiled);
        var (address, code) = NativeListing.Read(compiled);
        var twin = compiled.EmitNativeTwin();
        var session = JitMapSession.Compile(twin, out string reason);
        if (session == null) return new(address, code, null, $"not interleaved with the eBPF slots: {reason}");
        var twinCode = new byte[session.Size];
        Marshal.Copy(session.Address, twinCode, 0, session.Size);
        string other = NativeListing.Listing(0, twinCode);
        if (code.Length < twinCode.Length && IsPrefix(NativeListing.Listing(0, code), other))
        {
            // The running code's extent is found by following branches (NativeListing), which cannot see the
            // targets of a jump table (the frame return's switch): where the running code so far is the twin's
            // instruction for instruction, the runtime's size of the twin is the extent of both.
            code = new byte[twinCode.Length];
            Marshal.Copy(address, code, 0, code.Length);
        }
        string running = NativeListing.Listing(0, code);
        if (!SameLayout(running, other, out string difference))
            return new(address, code, null, $"not interleaved with the eBPF slots: the same IL compiled as an ordinary method, whose IL-to-native map the runtime publishes, gave other code ({difference})");
        var offsets = Lines(running).Select(NativeSlotMap.Offset).ToList();
        var origins = NativeSlotMap.Attribute(offsets, twin.Markers, session.Map);
        return new(address, code, origins, $"eBPF slots from the IL-to-native map of the same IL compiled as an ordinary method ({difference})");
    }

    /// <summary>True when every instruction of <paramref name="shorter"/> is at the same offset with the same mnemonic in <paramref name="longer"/>.</summary>
    static bool IsPrefix(string shorter, string longer)
    {
        var a = Lines(shorter);
        var b = Lines(longer);
        return a.Length <= b.Length && SameLayout(string.Join('\n', a), string.Join('\n', b.Take(a.Length)), out _);
    }

    static string[] Lines(string listing) => listing.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>
    /// True when both listings have the same instructions (mnemonics) at the same offsets; <paramref name="difference"/>
    /// says what differs: the first instruction that does, or how many instructions differ only in their bytes
    /// (the operands: addresses of calls and of data, which are not the same in two methods).
    /// </summary>
    public static bool SameLayout(string running, string twin, out string difference)
    {
        ArgumentNullException.ThrowIfNull(running);
        ArgumentNullException.ThrowIfNull(twin);
        var a = Lines(running);
        var b = Lines(twin);
        int bytesDiffer = 0;
        for (int i = 0; i < Math.Min(a.Length, b.Length); i++)
        {
            var (x, y) = (Split(a[i]), Split(b[i]));
            if (x.Offset != y.Offset || Mnemonic(x.Text) != Mnemonic(y.Text))
            {
                difference = $"instruction {i}: '{x.Text}' at {x.Offset:x4} runs, '{y.Text}' at {y.Offset:x4} in the other";
                return false;
            }
            if (x.Bytes != y.Bytes) bytesDiffer++;
        }
        if (a.Length != b.Length)
        {
            difference = $"{a.Length} instructions run, {b.Length} in the other";
            return false;
        }
        difference = bytesDiffer == 0
            ? $"the same {a.Length} instructions, byte for byte"
            : $"the same {a.Length} instructions at the same offsets; {bytesDiffer} differ in their operands' bytes";
        return true;
    }

    /// <summary>A listing line's offset, bytes (hex) and instruction text: <c>001c: 4883ec10   sub rsp,10h</c>.</summary>
    static (int Offset, string Bytes, string Text) Split(string line)
    {
        int colon = line.IndexOf(':', StringComparison.Ordinal);
        var rest = line[(colon + 1)..].TrimStart();
        int space = rest.IndexOf(' ', StringComparison.Ordinal);
        return space < 0 ? (NativeSlotMap.Offset(line), rest.Trim(), "") : (NativeSlotMap.Offset(line), rest[..space], rest[space..].Trim());
    }

    static string Mnemonic(string text)
    {
        int space = text.IndexOf(' ', StringComparison.Ordinal);
        return space < 0 ? text : text[..space];
    }
}

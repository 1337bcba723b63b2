using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// The lookup structure of <see cref="LpmTrieMap"/> for full-length keys while the map holds few prefixes (at most
/// <see cref="LpmTrieMap.SmallPrefixes"/>) of at most <see cref="MaxDataBytes"/> data bytes: every stored prefix as
/// its masked data and its mask, 32 bytes each, longest prefix first, in one block. A lookup compares the key with
/// each entry in turn (one 32-byte AND and compare) and the first that matches is the longest stored prefix of the
/// key. The entries are independent loads from one or two cache lines each, where the stride index's walk is a
/// chain of dependent loads through four or five tables for a tubular-style key: measured on the dispatcher's
/// 13 bindings, the scan is the faster one (docs/perf.md, "LPM dispatch against Linux's JIT").
/// <para>
/// The block is immutable: writers build a new one after each change of a small map (at most
/// <see cref="LpmTrieMap.SmallPrefixes"/> entries, from the trie) and publish it inside the change (the version word
/// is odd), or publish null once the map grows past it; the old block is retired through <see cref="MapEpoch"/>. A
/// lookup reads it between its two reads of the version word, like the other structures, so it is linearizable the
/// same way (<see cref="LpmPrefixIndex"/>).
/// </para>
/// <para>Block layout: <c>+0 i32</c> entries, then from <see cref="EntriesAt"/> the entries (<c>+0</c> masked data,
/// <c>+32</c> mask, zero past the data), then one node pointer per entry.</para>
/// </summary>
internal static unsafe class LpmSmallIndex
{
    /// <summary>The most data bytes a key may have for this structure (one 256-bit vector).</summary>
    public const int MaxDataBytes = 32;

    const int EntriesAt = 64, EntryBytes = 64, MaskAt = 32;

    /// <summary>
    /// The stored node with the longest prefix of the key, or null. <paramref name="key"/> is the key's data as four
    /// little-endian words whose bytes past the data may hold anything (the masks are zero there).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Longest(byte* block, Vector256<ulong> key)
    {
        int count = *(int*)block;
        byte* entry = block + EntriesAt;
        for (int i = 0; i < count; i++, entry += EntryBytes)
        {
            if (Vector256.EqualsAll(key & Vector256.Load((ulong*)(entry + MaskAt)), Vector256.Load((ulong*)entry)))
                return ((byte**)(block + EntriesAt + count * EntryBytes))[i];
        }
        return null;
    }

    /// <summary>
    /// A block for <paramref name="nodes"/> (stored trie nodes), or null when there are none. Each node's data (zero-padded
    /// to whole words) starts <paramref name="dataOffset"/> bytes in, its prefix length <paramref name="prefixOffset"/>
    /// bytes in; <paramref name="dataBytes"/> is at most <see cref="MaxDataBytes"/>.
    /// </summary>
    public static byte* Build(List<nint> nodes, int dataOffset, int prefixOffset, int dataBytes)
    {
        if (nodes.Count == 0) return null;
        // Longest first: the first entry a key matches is its longest stored prefix (two prefixes of one length never both match).
        nodes.Sort((a, b) => (*(uint*)((byte*)b + prefixOffset)).CompareTo(*(uint*)((byte*)a + prefixOffset)));
        int count = nodes.Count;
        byte* block = Native.Alloc((nuint)(EntriesAt + count * (EntryBytes + sizeof(nint))), 64);
        *(int*)block = count;
        byte** pointers = (byte**)(block + EntriesAt + count * EntryBytes);
        for (int i = 0; i < count; i++)
        {
            byte* node = (byte*)nodes[i];
            uint prefix = *(uint*)(node + prefixOffset);
            byte* entry = block + EntriesAt + i * EntryBytes;
            for (int b = 0; b < MaxDataBytes; b++)
            {
                int bits = (int)Math.Clamp((long)prefix - 8 * b, 0, 8);
                byte mask = (byte)(0xFF00 >> bits);
                entry[MaskAt + b] = mask;
                entry[b] = b < dataBytes ? (byte)(node[dataOffset + b] & mask) : (byte)0;
            }
            pointers[i] = node;
        }
        return block;
    }

    /// <summary>The bytes of a block (for the map's memory figure).</summary>
    public static long BytesOf(byte* block) => block == null ? 0 : EntriesAt + *(int*)block * (long)(EntryBytes + sizeof(nint));
}

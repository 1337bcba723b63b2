using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace BpfJit.Runtime.Maps;

/// <summary>Native allocation for map memory: zeroed, aligned, freed directly or through <see cref="MapEpoch"/>.</summary>
internal static unsafe class Native
{
    /// <summary>Zeroed memory aligned to <paramref name="alignment"/> (a power of two, at least 8).</summary>
    public static byte* Alloc(nuint size, nuint alignment = 8)
    {
        byte* p = (byte*)NativeMemory.AlignedAlloc(size == 0 ? 1 : size, alignment);
        NativeMemory.Clear(p, size);
        Checked.NativeAllocations.Allocated();
        return p;
    }

    /// <summary>Frees memory from <see cref="Alloc"/> at once (no reader can hold it).</summary>
    public static void Free(void* p)
    {
        NativeMemory.AlignedFree(p);
        Checked.NativeAllocations.Freed();
    }

    /// <summary>Rounds up to a multiple of 8, as the kernel does for per-CPU values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Round8(int n) => (n + 7) & ~7;

    /// <summary>Byte-wise equality of two native blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Equal(byte* a, byte* b, int length) =>
        new ReadOnlySpan<byte>(a, length).SequenceEqual(new ReadOnlySpan<byte>(b, length));

    /// <summary>Copies <paramref name="length"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy(byte* from, byte* to, int length) => Buffer.MemoryCopy(from, to, length, length);
}

using System.Runtime.CompilerServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// Every load and store <see cref="LpmPrefixIndex"/> makes on memory that readers and writers share (the
/// published root words, slots, filter words, node prefixes), as static methods of a type parameter. The
/// running code uses <see cref="DirectIndexMemory"/>, which the JIT inlines to the plain instructions; the
/// protocol test runs the same index code over a memory that records the writer's stores and replays them
/// between the reader's loads in every order (tests/Maps/LpmProtocolModelTests.cs), so the interleavings it
/// checks are those of the code that runs.
/// </summary>
internal unsafe interface IIndexMemory
{
    /// <summary>A reader's or writer's acquiring 8-byte load (published pointers, slot nodes, filter words, the version).</summary>
    static abstract ulong Load64(ulong* at);

    /// <summary>A plain 4-byte load (slot tags, node prefix lengths).</summary>
    static abstract uint Load32(uint* at);

    /// <summary>A writer's releasing 8-byte store (publishing a pointer, a node, a filter word).</summary>
    static abstract void Store64(ulong* at, ulong value);

    /// <summary>A writer's plain 4-byte store.</summary>
    static abstract void Store32(uint* at, uint value);

    /// <summary>A writer's increment of the version word, ordered before and after every other access (a full fence).</summary>
    static abstract void Bump(ulong* version);

    /// <summary>Orders the reader's earlier loads before its later ones (the seqlock's re-read of the version).</summary>
    static abstract void ReadBarrier();
}

/// <summary>The memory as it is: volatile and interlocked accesses that the JIT inlines.</summary>
internal unsafe struct DirectIndexMemory : IIndexMemory
{
    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Load64(ulong* at) => Volatile.Read(ref *at);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Load32(uint* at) => *at;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store64(ulong* at, ulong value) => Volatile.Write(ref *at, value);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store32(uint* at, uint value) => *at = value;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Bump(ulong* version) => Interlocked.Increment(ref *version);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ReadBarrier() => Volatile.ReadBarrier();
}

using System.Runtime.CompilerServices;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter;

/// <summary>
/// The atomic read-modify-write operations compiled programs call, one per operation and width,
/// each returning the old value. They are <see cref="Interlocked"/> (xor: the compare-exchange loop
/// of <see cref="Semantics"/>) kept out of line on purpose: when RyuJIT (.NET 10) inlines an
/// Interlocked intrinsic whose <c>ref</c> comes from a native address into a DynamicMethod, it can
/// move a later load of the same address above the locked instruction (observed: the program's
/// <c>ldxdw</c> after <c>lock fetch add</c> read the value from before the add). A call is a memory
/// barrier to the optimiser, so it cannot. Public because saved assemblies refer to them.
/// </summary>
public static unsafe class JitAtomics
{
    /// <summary>*(u64*)address += value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong Add64(ulong address, ulong value) => Interlocked.Add(ref *(ulong*)address, value) - value;

    /// <summary>*(u32*)address += value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static uint Add32(ulong address, uint value) => Interlocked.Add(ref *(uint*)address, value) - value;

    /// <summary>*(u64*)address |= value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong Or64(ulong address, ulong value) => Interlocked.Or(ref *(ulong*)address, value);

    /// <summary>*(u32*)address |= value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static uint Or32(ulong address, uint value) => Interlocked.Or(ref *(uint*)address, value);

    /// <summary>*(u64*)address &amp;= value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong And64(ulong address, ulong value) => Interlocked.And(ref *(ulong*)address, value);

    /// <summary>*(u32*)address &amp;= value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static uint And32(ulong address, uint value) => Interlocked.And(ref *(uint*)address, value);

    /// <summary>*(u64*)address ^= value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong Xor64(ulong address, ulong value) => Semantics.AtomicXor64(address, value);

    /// <summary>*(u32*)address ^= value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static uint Xor32(ulong address, uint value) => Semantics.AtomicXor32(address, value);

    /// <summary>Exchanges *(u64*)address with value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong Xchg64(ulong address, ulong value) => Interlocked.Exchange(ref *(ulong*)address, value);

    /// <summary>Exchanges *(u32*)address with value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static uint Xchg32(ulong address, uint value) => Interlocked.Exchange(ref *(uint*)address, value);

    /// <summary>If *(u64*)address == comparand, stores value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong CmpXchg64(ulong address, ulong value, ulong comparand) => Interlocked.CompareExchange(ref *(ulong*)address, value, comparand);

    /// <summary>If *(u32*)address == comparand, stores value; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static uint CmpXchg32(ulong address, uint value, uint comparand) => Interlocked.CompareExchange(ref *(uint*)address, value, comparand);
}

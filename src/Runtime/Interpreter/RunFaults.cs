using System.Runtime.CompilerServices;
using BpfJit.Frontend;

namespace BpfJit.Runtime;

/// <summary>
/// Faults contained at a program's entry (<see cref="IBpfEngine.PrepareContained"/>): an entry prepared so catches
/// what a run may raise (<see cref="IsFault"/>) in its own frame, records it for this thread (<see cref="Contain"/>)
/// and returns <see cref="Sentinel"/>; its caller, seeing that value, takes the recorded error (<see cref="Take"/>).
/// A run array then calls its programs with no exception handler of its own, whose frame would cost the loop its
/// registers (docs/jit.md, "Fault containment at the entry").
/// </summary>
public static class RunFaults
{
    /// <summary>
    /// What a contained entry returns after a fault: SK_DROP (0) in the low 32 bits, which the run array truncates
    /// r0 to, so the fault is a drop on the path that already tests for one. A program may return this value itself:
    /// with no fault recorded, <see cref="Take"/> then answers null and the value is an ordinary return.
    /// </summary>
    public const ulong Sentinel = 0xFA17_BAD0_0000_0000;

    [ThreadStatic] static Exception? t_fault;

    /// <summary>True for what a program run may raise: a <see cref="BpfException"/>, or the runtime's own errors from unguarded code.</summary>
    public static bool IsFault(Exception e) => e is BpfException or NullReferenceException or DivideByZeroException;

    /// <summary>A contained entry's handler: records <paramref name="fault"/> for this thread; returns <see cref="Sentinel"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong Contain(Exception fault)
    {
        t_fault = fault;
        return Sentinel;
    }

    /// <summary>The error a contained entry recorded on this thread, cleared; null when there is none.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static Exception? Take()
    {
        var fault = t_fault;
        t_fault = null;
        return fault;
    }

    /// <summary>
    /// <paramref name="entry"/> contained by a handler around it: for an engine whose own code does not contain
    /// faults (<see cref="IBpfEngine.PrepareContained"/> returned null). The handler's frame is paid per run.
    /// </summary>
    public static BpfEntry Wrap(BpfEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return (r1, r2) =>
        {
            try
            {
                return entry(r1, r2);
            }
            catch (Exception e) when (IsFault(e))
            {
                return Contain(e);
            }
        };
    }
}

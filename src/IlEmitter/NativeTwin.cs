using System.Reflection;

namespace BpfJit.IlEmitter;

/// <summary>
/// A compiled program emitted again, by the same emitter, as the ordinary static method <c>Run(JitClosure, ulong,
/// ulong)</c> of a collectible assembly, not yet compiled (<see cref="CompiledProgram.EmitNativeTwin"/>). The runtime
/// publishes the IL-to-native map of such a method (JittedMethodILToNativeMap events) but not of the DynamicMethod
/// that runs; <c>dump --native</c> compiles the twin under an EventPipe session and carries its map over to the
/// running code where the two codes have the same layout.
/// </summary>
public sealed class NativeTwin
{
    internal NativeTwin(MethodInfo method, IReadOnlyList<(int Slot, int IlOffset)> markers)
    {
        Method = method;
        Markers = markers;
    }

    /// <summary>Pseudo-slot of the prologue in <see cref="Markers"/>.</summary>
    public const int PrologueSlot = Emit.EmitContext.PrologueSlot;

    /// <summary>Pseudo-slot of the shared return-from-local-call block in <see cref="Markers"/>.</summary>
    public const int FrameReturnSlot = Emit.EmitContext.FrameReturnSlot;

    /// <summary>The static method, not compiled yet (<c>RuntimeHelpers.PrepareMethod</c> compiles it).</summary>
    public MethodInfo Method { get; }

    /// <summary>
    /// Where each slot's IL starts, in emission order (the IL offsets of the DynamicMethod's IL too): several slots
    /// may share an offset (slots that emit nothing), a slot may appear twice (a loop unrolled), and pseudo-slots
    /// <see cref="PrologueSlot"/> and <see cref="FrameReturnSlot"/> mark blocks of no instruction.
    /// </summary>
    public IReadOnlyList<(int Slot, int IlOffset)> Markers { get; }
}

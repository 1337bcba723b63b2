using System.Text;
using BpfJit.Frontend;
using BpfJit.IlEmitter.Emit;
using BpfJit.IlEmitter.Hosting;
using Mono.Cecil;
using Mono.Cecil.Cil;

namespace BpfJit.IlEmitter.Dump;

/// <summary>
/// Formats the IL of a saved program, read back with Mono.Cecil, interleaved with the eBPF
/// instructions: the emitter recorded the IL offset where each slot's code starts, and a header
/// line <c>; index: disassembly</c> is printed before the IL instruction at that offset.
/// Locals print by register name.
/// </summary>
internal static class IlListing
{
    public static string Format(byte[] assembly, ProgramShape shape, EmitRecord record)
    {
        var markers = record.Markers;
        string LocalName(int index) => index < record.LocalNames.Count ? record.LocalNames[index] : $"V_{index}";
        using var module = ModuleDefinition.ReadModule(new MemoryStream(assembly));
        var method = module.GetType(PersistedAssemblyHost.TypeName).Methods.Single(m => m.Name == PersistedAssemblyHost.MethodName);
        var headers = markers.GroupBy(m => m.IlOffset).ToDictionary(g => g.Key, g => g.Select(m => m.Slot).ToList());
        var sb = new StringBuilder();
        sb.AppendLine($"// {PersistedAssemblyHost.TypeName}::{method.Name}({string.Join(", ", method.Parameters.Select(p => $"{p.ParameterType.Name} {p.Name}"))}) : {method.ReturnType.Name}");
        sb.AppendLine($"// {shape.Program.Length} slots, {method.Body.CodeSize} bytes of IL, stack: {(shape.UsesStack ? $"{shape.Frames} x {shape.FrameSize} bytes" : shape.LocalSlots is { } slots ? $"slots in locals ({string.Join(", ", slots.Select(StackSlots.LocalName))})" : "none")}, locals: {string.Join(", ", method.Body.Variables.Select(v => $"{LocalName(v.Index)} {v.VariableType.Name}"))}");
        if (shape.Facts != null)
            sb.AppendLine($"// specialised with verifier facts: {(shape.LocalSlots != null ? "stack slots in locals, no stack block" : !shape.UsesStack ? "r10 never used, no stack block" : shape.Facts.MayReadUninitStack ? "stack zeroed (some path may read it uninitialised)" : $"stack {shape.FrameSize} bytes, not zeroed (never read before written)")}");
        void Headers(int offset)
        {
            if (!headers.TryGetValue(offset, out var slots)) return;
            foreach (int slot in slots)
            {
                sb.AppendLine(Header(shape.Program, slot));
                if (record.Notes.TryGetValue(slot, out var notes))
                    foreach (var note in notes) sb.Append("  ; ").AppendLine(note);
            }
        }
        foreach (var ins in method.Body.Instructions)
        {
            Headers(ins.Offset);
            sb.Append("  IL_").Append(ins.Offset.ToString("x4")).Append(": ").Append(ins.OpCode.Name);
            string? operand = Operand(ins, LocalName);
            if (operand != null) sb.Append(' ').Append(operand);
            sb.AppendLine();
        }
        Headers(method.Body.CodeSize);   // trailing slots that emitted nothing (dead code at the end)
        var bad = markers.Where(m => m.IlOffset != method.Body.CodeSize && !method.Body.Instructions.Any(i => i.Offset == m.IlOffset)).ToList();
        if (bad.Count > 0) throw new InvalidOperationException($"IL markers at {string.Join(", ", bad)} are not instruction boundaries");
        return sb.ToString();
    }

    static string Header(BpfJit.Frontend.Instruction[] program, int slot) => slot switch
    {
        EmitContext.PrologueSlot => "; prologue",
        EmitContext.FrameReturnSlot => "; return from a bpf-to-bpf call (shared by every exit)",
        _ => $"; {slot}: {Disassembler.Format(program, slot)}",
    };

    static string? Operand(Mono.Cecil.Cil.Instruction ins, Func<int, string> LocalName)
    {
        switch (ins.OpCode.Code)
        {
            case Code.Ldloc_0 or Code.Stloc_0: return "// " + LocalName(0);
            case Code.Ldloc_1 or Code.Stloc_1: return "// " + LocalName(1);
            case Code.Ldloc_2 or Code.Stloc_2: return "// " + LocalName(2);
            case Code.Ldloc_3 or Code.Stloc_3: return "// " + LocalName(3);
        }
        return ins.Operand switch
        {
            null => null,
            VariableDefinition v => LocalName(v.Index),
            Mono.Cecil.Cil.Instruction target => $"IL_{target.Offset:x4}",
            Mono.Cecil.Cil.Instruction[] targets => "(" + string.Join(", ", targets.Select(t => $"IL_{t.Offset:x4}")) + ")",
            MethodReference m => $"{m.ReturnType.Name} {m.DeclaringType.Name}::{m.Name}{(m is GenericInstanceMethod g ? "<" + string.Join(", ", g.GenericArguments.Select(a => a.Name)) + ">" : "")}({string.Join(", ", m.Parameters.Select(p => p.ParameterType.Name))})",
            FieldReference f => $"{f.FieldType.Name} {f.DeclaringType.Name}::{f.Name}",
            ParameterDefinition p => p.Name,
            long l => l < 0 || l > 9 ? $"0x{l:x}" : l.ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => Convert.ToString(ins.Operand, System.Globalization.CultureInfo.InvariantCulture),
        };
    }
}

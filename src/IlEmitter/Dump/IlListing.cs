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
    public static string Format(byte[] assembly, ProgramShape shape, List<(int Slot, int IlOffset)> markers)
    {
        using var module = ModuleDefinition.ReadModule(new MemoryStream(assembly));
        var method = module.GetType(PersistedAssemblyHost.TypeName).Methods.Single(m => m.Name == PersistedAssemblyHost.MethodName);
        var headers = markers.GroupBy(m => m.IlOffset).ToDictionary(g => g.Key, g => g.Select(m => m.Slot).ToList());
        var sb = new StringBuilder();
        sb.AppendLine($"// {PersistedAssemblyHost.TypeName}::{method.Name}({string.Join(", ", method.Parameters.Select(p => $"{p.ParameterType.Name} {p.Name}"))}) : {method.ReturnType.Name}");
        sb.AppendLine($"// {shape.Program.Length} slots, {method.Body.CodeSize} bytes of IL, stack: {(shape.UsesStack ? $"{shape.Frames} x 512 bytes" : "none")}, locals: {string.Join(", ", method.Body.Variables.Select(v => $"{LocalName(v.Index)} {v.VariableType.Name}"))}");
        foreach (var ins in method.Body.Instructions)
        {
            if (headers.TryGetValue(ins.Offset, out var slots))
                foreach (int slot in slots) sb.AppendLine(Header(shape.Program, slot));
            sb.Append("  IL_").Append(ins.Offset.ToString("x4")).Append(": ").Append(ins.OpCode.Name);
            string? operand = Operand(ins);
            if (operand != null) sb.Append(' ').Append(operand);
            sb.AppendLine();
        }
        var bad = markers.Where(m => !method.Body.Instructions.Any(i => i.Offset == m.IlOffset)).ToList();
        if (bad.Count > 0) throw new InvalidOperationException($"IL markers at {string.Join(", ", bad)} are not instruction boundaries");
        return sb.ToString();
    }

    static string Header(BpfJit.Frontend.Instruction[] program, int slot) => slot switch
    {
        EmitContext.PrologueSlot => "; prologue",
        EmitContext.FrameReturnSlot => "; return from a bpf-to-bpf call (shared by every exit)",
        _ => $"; {slot}: {Disassembler.Format(program, slot)}",
    };

    static string LocalName(int index) => index < EmitContext.LocalNames.Length ? EmitContext.LocalNames[index] : $"V_{index}";

    static string? Operand(Mono.Cecil.Cil.Instruction ins)
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
            MethodReference m => $"{m.ReturnType.Name} {m.DeclaringType.Name}::{m.Name}({string.Join(", ", m.Parameters.Select(p => p.ParameterType.Name))})",
            ParameterDefinition p => p.Name,
            long l => l < 0 || l > 9 ? $"0x{l:x}" : l.ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => Convert.ToString(ins.Operand, System.Globalization.CultureInfo.InvariantCulture),
        };
    }
}

using System.Reflection;
using System.Reflection.Emit;
using BpfJit.IlEmitter.Emit;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter.Hosting;

/// <summary>
/// Emits programs, through the same <see cref="ProgramEmitter"/> as <see cref="DynamicMethodHost"/>,
/// into a <see cref="PersistedAssemblyBuilder"/>: a standalone assembly whose public static class
/// <c>BpfJit.Dump.BpfProgram</c> has one method <c>ulong Name(JitClosure closure, ulong r1, ulong r2)</c>
/// per program (<c>Run</c> for a single program), for IL listings, decompilation and <c>bpfjit dump --dll</c>.
/// </summary>
internal static class PersistedAssemblyHost
{
    public const string AssemblyName = "BpfJit.Dump";
    public const string TypeName = "BpfJit.Dump.BpfProgram";
    public const string MethodName = "Run";

    /// <summary>One program to persist: its method name, shape, resolved helpers and options.</summary>
    public sealed record Entry(string Name, ProgramShape Shape, Helper?[] Helpers, JitOptions Options);

    public static byte[] Build(ProgramShape shape, Helper?[] helpers, JitOptions options, out EmitRecord record)
    {
        byte[] bytes = Build([new Entry(MethodName, shape, helpers, options)], out var all);
        record = all[0];
        return bytes;
    }

    public static byte[] Build(IReadOnlyList<Entry> programs, out List<EmitRecord> records)
    {
        var assembly = new PersistedAssemblyBuilder(new AssemblyName(AssemblyName), typeof(object).Assembly);
        var module = assembly.DefineDynamicModule(AssemblyName);
        var type = module.DefineType(TypeName, TypeAttributes.Public | TypeAttributes.Abstract | TypeAttributes.Sealed | TypeAttributes.Class);
        records = [];
        foreach (var p in programs)
        {
            var method = type.DefineMethod(p.Name, MethodAttributes.Public | MethodAttributes.Static | MethodAttributes.HideBySig,
                typeof(ulong), ProgramEmitter.ParameterTypes);
            method.DefineParameter(1, ParameterAttributes.None, "closure");
            method.DefineParameter(2, ParameterAttributes.None, "r1");
            method.DefineParameter(3, ParameterAttributes.None, "r2");
            method.InitLocals = false;
            records.Add(ProgramEmitter.Emit(method.GetILGenerator(), p.Shape, p.Helpers, p.Options));
        }
        type.CreateType();
        using var stream = new MemoryStream();
        assembly.Save(stream);
        return stream.ToArray();
    }
}

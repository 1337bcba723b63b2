using System.Reflection;
using System.Reflection.Emit;
using BpfJit.IlEmitter.Emit;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter.Hosting;

/// <summary>
/// Emits a program, through the same <see cref="ProgramEmitter"/> as <see cref="DynamicMethodHost"/>,
/// into a <see cref="PersistedAssemblyBuilder"/>: a standalone assembly with one public static
/// method <c>BpfJit.Dump.BpfProgram.Run(JitClosure closure, ulong r1, ulong r2)</c> for IL listings,
/// decompilation and <c>bpfjit dump --dll</c>.
/// </summary>
internal static class PersistedAssemblyHost
{
    public const string AssemblyName = "BpfJit.Dump";
    public const string TypeName = "BpfJit.Dump.BpfProgram";
    public const string MethodName = "Run";

    public static byte[] Build(ProgramShape shape, Helper?[] helpers, JitOptions options, out List<(int Slot, int IlOffset)> markers)
    {
        var assembly = new PersistedAssemblyBuilder(new AssemblyName(AssemblyName), typeof(object).Assembly);
        var module = assembly.DefineDynamicModule(AssemblyName);
        var type = module.DefineType(TypeName, TypeAttributes.Public | TypeAttributes.Abstract | TypeAttributes.Sealed | TypeAttributes.Class);
        var method = type.DefineMethod(MethodName, MethodAttributes.Public | MethodAttributes.Static | MethodAttributes.HideBySig,
            typeof(ulong), ProgramEmitter.ParameterTypes);
        method.DefineParameter(1, ParameterAttributes.None, "closure");
        method.DefineParameter(2, ParameterAttributes.None, "r1");
        method.DefineParameter(3, ParameterAttributes.None, "r2");
        method.InitLocals = false;
        markers = ProgramEmitter.Emit(method.GetILGenerator(), shape, helpers, options);
        type.CreateType();
        using var stream = new MemoryStream();
        assembly.Save(stream);
        return stream.ToArray();
    }
}

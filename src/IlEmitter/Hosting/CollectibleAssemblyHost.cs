using System.Reflection;
using System.Reflection.Emit;
using BpfJit.IlEmitter.Emit;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter.Hosting;

/// <summary>
/// Emits a program, through the same <see cref="ProgramEmitter"/> as <see cref="DynamicMethodHost"/>, as the
/// ordinary static method <c>Run</c> of a collectible (<see cref="AssemblyBuilderAccess.RunAndCollect"/>) assembly
/// that this process can compile. Only <c>dump --native</c> uses it: the runtime sends the IL-to-native map of
/// an ordinary method in its JittedMethodILToNativeMap events, never a DynamicMethod's (docs/il-dump.md, "Machine code").
/// </summary>
internal static class CollectibleAssemblyHost
{
    const string AccessAttribute = "System.Runtime.CompilerServices.IgnoresAccessChecksToAttribute";

    public static MethodInfo Build(ProgramShape shape, Helper?[] helpers, JitOptions options, out EmitRecord record)
    {
        var assembly = AssemblyBuilder.DefineDynamicAssembly(new AssemblyName($"BpfJit.Native.{Guid.NewGuid():N}"), AssemblyBuilderAccess.RunAndCollect);
        var module = assembly.DefineDynamicModule("BpfJit.Native");
        // The DynamicMethod skips visibility checks; without the same licence RyuJIT would compile a call to an
        // internal helper as a throw of MethodAccessException, and the code would not be the code that runs.
        var access = AccessCheckAttribute(module);
        var targets = new HashSet<Assembly> { typeof(CollectibleAssemblyHost).Assembly, typeof(Helper).Assembly, typeof(BpfJit.Frontend.Instruction).Assembly };
        foreach (var h in helpers)
            if (h != null && h.Method.DeclaringType != null) targets.Add(h.Method.DeclaringType.Assembly);
        foreach (var target in targets)
            assembly.SetCustomAttribute(new CustomAttributeBuilder(access, [target.GetName().Name!]));
        var type = module.DefineType(PersistedAssemblyHost.TypeName, TypeAttributes.Public | TypeAttributes.Abstract | TypeAttributes.Sealed | TypeAttributes.Class);
        var method = type.DefineMethod(PersistedAssemblyHost.MethodName, MethodAttributes.Public | MethodAttributes.Static | MethodAttributes.HideBySig,
            typeof(ulong), ProgramEmitter.ParameterTypes);
        // A DynamicMethod is compiled once, fully optimised; an ordinary method would start at tier 0.
        method.SetImplementationFlags(MethodImplAttributes.AggressiveOptimization);
        method.InitLocals = false;
        record = ProgramEmitter.Emit(method.GetILGenerator(64 + shape.Program.Length * 24), shape, helpers, options);
        return type.CreateType().GetMethod(PersistedAssemblyHost.MethodName)!;
    }

    /// <summary>The runtime honours an IgnoresAccessChecksTo attribute of any assembly that defines one by this name.</summary>
    static ConstructorInfo AccessCheckAttribute(ModuleBuilder module)
    {
        var type = module.DefineType(AccessAttribute, TypeAttributes.NotPublic | TypeAttributes.Sealed | TypeAttributes.Class, typeof(Attribute));
        var field = type.DefineField("_name", typeof(string), FieldAttributes.Private | FieldAttributes.InitOnly);
        var ctor = type.DefineConstructor(MethodAttributes.Public | MethodAttributes.HideBySig | MethodAttributes.SpecialName | MethodAttributes.RTSpecialName,
            CallingConventions.Standard, [typeof(string)]);
        var il = ctor.GetILGenerator();
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Call, typeof(Attribute).GetConstructor(BindingFlags.NonPublic | BindingFlags.Instance, Type.EmptyTypes)!);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Stfld, field);
        il.Emit(OpCodes.Ret);
        var getter = type.DefineMethod("get_AssemblyName", MethodAttributes.Public | MethodAttributes.HideBySig | MethodAttributes.SpecialName, typeof(string), Type.EmptyTypes);
        var g = getter.GetILGenerator();
        g.Emit(OpCodes.Ldarg_0);
        g.Emit(OpCodes.Ldfld, field);
        g.Emit(OpCodes.Ret);
        type.DefineProperty("AssemblyName", PropertyAttributes.None, typeof(string), Type.EmptyTypes).SetGetMethod(getter);
        type.CreateType();
        return ctor;
    }
}

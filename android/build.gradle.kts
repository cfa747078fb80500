// Android library module for Linli's core. Not built on the project's CI
// machines (no Android SDK there); see docs/bindings.md for the commands.
//
// The build (1) compiles the Rust core for the three ABIs with cargo-ndk into
// src/main/jniLibs, and (2) generates the Kotlin bindings from the built
// library with the workspace's uniffi-bindgen into build/generated/uniffi.

plugins {
    id("com.android.library") version "8.7.0"
    kotlin("android") version "2.0.21"
}

android {
    namespace = "org.linli.core"
    compileSdk = 35
    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }
    sourceSets["main"].kotlin.srcDir(layout.buildDirectory.dir("generated/uniffi"))
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin { jvmToolchain(17) }

dependencies {
    implementation("net.java.dev.jna:jna:5.14.0@aar")
}

val workspace = rootDir.resolve("..")
val abis = listOf("arm64-v8a", "armeabi-v7a", "x86_64")

val cargoNdk by tasks.registering(Exec::class) {
    workingDir = workspace
    commandLine(
        listOf("cargo", "ndk") + abis.flatMap { listOf("-t", it) } +
            listOf("-o", projectDir.resolve("src/main/jniLibs").path, "build", "--release", "-p", "linli-ffi"),
    )
}

val uniffiKotlin by tasks.registering(Exec::class) {
    dependsOn(cargoNdk)
    workingDir = workspace
    commandLine(
        "cargo", "run", "-p", "linli-ffi", "--features", "bindgen", "--bin", "uniffi-bindgen", "--",
        "generate", "--library", projectDir.resolve("src/main/jniLibs/arm64-v8a/liblinli_ffi.so").path,
        "--language", "kotlin", "--out-dir", layout.buildDirectory.dir("generated/uniffi").get().asFile.path,
    )
}

tasks.named("preBuild") { dependsOn(uniffiKotlin) }
